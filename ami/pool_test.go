package ami

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

// receivedAction is an action that fakeAMI received, with its session.
type receivedAction struct {
	session *fakeSession
	req     Message
}

// startPool runs a Pool of size clients for cfg until the test ends. The
// event client gets an OnEvent that drops events when cfg has none, so it
// logs in with "Events: on" unless cfg sets Events.
func startPool(t testing.TB, cfg Config, size int) *Pool {
	t.Helper()
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Message) {}
	}
	p := NewPool(New(cfg), size)
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(t.Context()) }()
	t.Cleanup(func() {
		require.NoError(t, p.Close())
		require.NoError(t, <-runErr)
	})
	return p
}

// startConnectedPool runs a Pool and waits until every client is logged in.
// It returns the sessions of the event client and of the action clients.
func startConnectedPool(t *testing.T, srv *fakeAMI, cfg Config, size int) (p *Pool, events *fakeSession, actions []*fakeSession) {
	t.Helper()
	p = startPool(t, cfg, size)
	for range size {
		s := srv.waitLogin(t)
		if s.events == "on" {
			events = s
			continue
		}
		actions = append(actions, s)
	}
	require.NotNil(t, events, "no login with Events: on")
	require.Eventually(t, func() bool {
		return p.events.Connected() && p.ConnectedActionClients() == size-1
	}, waitTimeout, time.Millisecond)
	return p, events, actions
}

// recordActions makes srv pass every action other than Ping to the
// returned channel and respond with success.
func recordActions(srv *fakeAMI) <-chan receivedAction {
	received := make(chan receivedAction, 100)
	srv.handle(func(s *fakeSession, req Message) {
		if req.Action() != ActionPing {
			received <- receivedAction{session: s, req: req}
		}
		s.reply(req, "Response", "Success", "Message", "done")
	})
	return received
}

// hasLogLine reports whether one line of logs contains every part.
func hasLogLine(logs *logBuffer, parts ...string) bool {
	for line := range strings.SplitSeq(logs.String(), "\n") {
		found := true
		for _, part := range parts {
			found = found && strings.Contains(line, part)
		}
		if found {
			return true
		}
	}
	return false
}

func TestPoolActionClientsLogIn(t *testing.T) {
	srv := newFakeAMI(t)
	logs := &logBuffer{}

	_, events, actions := startConnectedPool(t, srv, testConfig(srv, logs), 3)

	assert.Equal(t, "on", events.events)
	require.Len(t, actions, 2)
	for _, s := range actions {
		assert.Equal(t, "off", s.events)
	}
	assert.True(t, hasLogLine(logs, `msg="AMI connected"`, "conn=action-2"), logs.String())
	assert.True(t, hasLogLine(logs, `msg="AMI connected"`, "conn=action-3"), logs.String())
}

func TestPoolSpreadsActionsInFlight(t *testing.T) {
	srv := newFakeAMI(t)
	unanswered := make(chan receivedAction, 10)
	srv.handle(func(s *fakeSession, req Message) {
		unanswered <- receivedAction{session: s, req: req} // no response until the test sends it
	})
	p, events, _ := startConnectedPool(t, srv, testConfig(srv, &logBuffer{}), 3)

	// Each action is sent only after the previous one reached the server,
	// so its client already counts it as in flight.
	results := make(chan error, 3)
	var got []receivedAction
	for i := range 3 {
		go func() {
			_, err := p.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "sales", "Interface", "PJSIP/"+strconv.Itoa(1001+i)))
			results <- err
		}()
		got = append(got, receive(t, unanswered))
	}

	assert.Equal(t, "off", got[0].session.events, "a tie goes to an action-only client")
	assert.Equal(t, "off", got[1].session.events, "the idle action-only client goes before the busy one")
	assert.NotSame(t, got[0].session, got[1].session)
	assert.Same(t, events, got[2].session, "the event client is idle while both action-only clients are busy")
	for _, r := range got {
		r.session.reply(r.req, "Response", "Success", "Message", "Added interface to queue")
	}
	for range 3 {
		require.NoError(t, <-results)
	}
	for _, c := range p.clients() {
		assert.Zero(t, c.inFlight.Load(), "actions in flight after every response")
	}
}

func TestPoolTiesTakeTurns(t *testing.T) {
	srv := newFakeAMI(t)
	received := recordActions(srv)
	p, _, actions := startConnectedPool(t, srv, testConfig(srv, &logBuffer{}), 3)

	counts := map[*fakeSession]int{}
	for range 4 {
		_, err := p.Action(t.Context(), NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "true"))
		require.NoError(t, err)
		counts[receive(t, received).session]++
	}

	assert.Equal(t, map[*fakeSession]int{actions[0]: 2, actions[1]: 2}, counts,
		"one action at a time alternates between the action-only clients")
}

func TestPoolSkipsDownActionClient(t *testing.T) {
	srv := newFakeAMI(t)
	logs := &logBuffer{}
	received := recordActions(srv)
	p, events, actions := startConnectedPool(t, srv, testConfig(srv, logs), 2)

	srv.rejectLogins.Store(1 << 20)
	actions[0].close()
	require.Eventually(t, func() bool { return p.ConnectedActionClients() == 0 }, waitTimeout, time.Millisecond)

	for range 3 {
		_, err := p.Action(t.Context(), NewAction(ActionQueueRemove, "Queue", "sales", "Interface", "PJSIP/1001"))
		require.NoError(t, err)
		assert.Same(t, events, receive(t, received).session)
	}
	assert.True(t, hasLogLine(logs, `msg="AMI connection lost, reconnecting"`, "conn=action-2"), logs.String())

	srv.rejectLogins.Store(0)
	require.Eventually(t, func() bool { return p.ConnectedActionClients() == 1 }, waitTimeout, time.Millisecond)
	assert.True(t, hasLogLine(logs, `msg="AMI connection restored"`, "conn=action-2"), logs.String())
}

func TestPoolEventClientDownRejectsActions(t *testing.T) {
	srv := newFakeAMI(t)
	received := recordActions(srv)
	p, events, _ := startConnectedPool(t, srv, testConfig(srv, &logBuffer{}), 2)

	srv.rejectLogins.Store(1 << 20)
	events.close()
	require.Eventually(t, func() bool { return !p.events.Connected() }, waitTimeout, time.Millisecond)
	require.Equal(t, 1, p.ConnectedActionClients())

	_, err := p.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "sales", "Interface", "PJSIP/1001"))

	require.ErrorIs(t, err, ErrNotConnected)
	assert.Contains(t, err.Error(), "QueueAdd not sent")
	assert.Empty(t, received, "no action may reach Asterisk while the event client is down")
}

func TestPoolAllDownReturnsNotConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cfg := Config{Addr: addr, Username: fakeUser, Secret: fakeSecret, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		PingInterval: -1, Logger: (&logBuffer{}).logger()}
	p := startPool(t, cfg, 3)
	require.Eventually(t, func() bool {
		for _, c := range p.clients() {
			if c.Stats().Failures == 0 {
				return false
			}
		}
		return true
	}, waitTimeout, time.Millisecond, "every client tried to connect")

	_, err = p.Action(t.Context(), NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "true"))
	require.ErrorIs(t, err, ErrNotConnected)
	assert.Contains(t, err.Error(), "connection refused", "the error names the last failure of the event client")

	err = NewQueues(p).AddMember(t.Context(), agent.Member{Queue: "sales", Interface: "PJSIP/1001"})
	require.ErrorIs(t, err, agent.ErrAsteriskUnavailable, "the HTTP API maps this to 503 asterisk_unavailable")
}

func TestPoolActionListUsesEventClient(t *testing.T) {
	srv := newFakeAMI(t)
	received := recordActions(srv)
	p, events, _ := startConnectedPool(t, srv, testConfig(srv, &logBuffer{}), 3)

	_, err := NewQueues(p).QueueStatus(t.Context(), "sales")

	require.NoError(t, err)
	r := receive(t, received)
	assert.Equal(t, ActionQueueStatus, r.req.Action())
	assert.Same(t, events, r.session)
}

func TestPoolOfOneUsesEventClient(t *testing.T) {
	srv := newFakeAMI(t)
	received := recordActions(srv)

	for _, size := range []int{1, 0, -1} {
		p := startPool(t, testConfig(srv, &logBuffer{}), size)
		events := srv.waitLogin(t)
		require.Eventually(t, p.events.Connected, waitTimeout, time.Millisecond)
		assert.Equal(t, 1, p.Size(), "size %d", size)

		_, err := p.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "sales", "Interface", "PJSIP/1001"))

		require.NoError(t, err)
		assert.Same(t, events, receive(t, received).session)
		require.NoError(t, p.Close())
	}
}

func TestPoolClose(t *testing.T) {
	srv := newFakeAMI(t)
	p := NewPool(New(testConfig(srv, &logBuffer{})), 3)
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(context.Background()) }()
	for range 3 {
		srv.waitLogin(t)
	}
	require.Eventually(t, func() bool { return p.events.Connected() && p.ConnectedActionClients() == 2 }, waitTimeout, time.Millisecond)

	require.NoError(t, p.Close())

	require.NoError(t, <-runErr)
	for _, c := range p.clients() {
		assert.False(t, c.Connected())
	}
	assert.Eventually(t, func() bool { return srv.logoffs.Load() == 3 }, waitTimeout, time.Millisecond, "each client logs off")
	require.NoError(t, p.Close(), "a second Close is harmless")
	require.ErrorIs(t, p.Run(context.Background()), ErrClosed)
	_, err := p.Action(context.Background(), NewAction(ActionPing))
	require.ErrorIs(t, err, ErrNotConnected)
}

func TestPoolRunStopsOnInvalidConfig(t *testing.T) {
	p := NewPool(New(Config{Logger: (&logBuffer{}).logger()}), 3)

	err := p.Run(t.Context())

	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Username is empty")
}

func TestPoolRunStopsOtherClientsOnError(t *testing.T) {
	srv := newFakeAMI(t)
	p := NewPool(New(testConfig(srv, &logBuffer{})), 2)
	// The action client is already running, so its second Run fails while
	// the event client starts normally.
	actionRun := make(chan error, 1)
	go func() { actionRun <- p.actions[0].Run(context.Background()) }()
	srv.waitLogin(t)

	err := p.Run(context.Background())

	require.ErrorIs(t, err, ErrRunning)
	assert.False(t, p.events.Connected(), "the event client stopped with the failing one")
	require.NoError(t, p.actions[0].Close())
	require.NoError(t, <-actionRun)
}
