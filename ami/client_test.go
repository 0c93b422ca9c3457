package ami

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds waits for something the test has caused. It is a
// guard against a hang, not a timing target.
const waitTimeout = 5 * time.Second

func TestActionsAnsweredOutOfOrder(t *testing.T) {
	const n = 20
	srv := newFakeAMI(t)
	var mu sync.Mutex
	var heldRequests []Message
	srv.handle(func(s *fakeSession, req Message) {
		mu.Lock()
		defer mu.Unlock()
		heldRequests = append(heldRequests, req)
		if len(heldRequests) < n {
			return
		}
		for i := len(heldRequests) - 1; i >= 0; i-- {
			s.reply(heldRequests[i], "Response", "Success", "Message", "queue "+heldRequests[i].Get("Queue"))
		}
	})
	logs := &logBuffer{}
	c, _ := startConnected(t, srv, testConfig(srv, logs))

	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := c.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "q"+strconv.Itoa(i)))
			results[i], errs[i] = resp.Get("Message"), err
		})
	}
	wg.Wait()

	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, "queue q"+strconv.Itoa(i), results[i])
	}
	ids := map[string]bool{}
	for _, req := range heldRequests {
		ids[req.ActionID()] = true
	}
	assert.Len(t, ids, n, "every action must get its own ActionID")
}

func TestActionReplacesCallerActionID(t *testing.T) {
	srv := newFakeAMI(t)
	seen := make(chan string, 1)
	srv.handle(func(s *fakeSession, req Message) {
		seen <- strings.Join(req.Values(KeyActionID), ",")
		s.reply(req, "Response", "Success")
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))
	req := NewAction(ActionPing, KeyActionID, "mine")

	_, err := c.Action(t.Context(), req)

	require.NoError(t, err)
	id := <-seen
	assert.NotEqual(t, "mine", id)
	assert.NotContains(t, id, ",")
	assert.Equal(t, "mine", req.ActionID(), "Action must not change the caller's message")
}

func TestActionErrorResponse(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		s.reply(req, "Response", "Error", "Message", "Unable to add interface: Already there")
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	resp, err := c.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "sales", "Interface", "PJSIP/1001"))

	var respErr *ResponseError
	require.ErrorAs(t, err, &respErr)
	assert.Equal(t, ActionQueueAdd, respErr.Action)
	assert.Equal(t, "Unable to add interface: Already there", respErr.Message)
	assert.Equal(t, "Error", resp.Response())
	assert.Equal(t, "ami: Asterisk rejected QueueAdd: Unable to add interface: Already there", err.Error())
}

func TestActionRepeatedKeysKept(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		s.reply(req, "Response", "Success", "Message", "Command output follows",
			"Output", "Name/ID  Location", "Output", "  0 active channels", "Output", "")
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	resp, err := c.Action(t.Context(), NewAction(ActionCommand, "Command", "core show channels"))

	require.NoError(t, err)
	assert.Equal(t, []string{"Name/ID  Location", "  0 active channels", ""}, resp.Values("Output"))
}

func TestActionList(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		id := req.ActionID()
		s.reply(req, "Response", "Success", "EventList", "start", "Message", "Queue status will follow")
		s.send("Event", "QueueParams", "Queue", "sales", "ActionID", id)
		s.send("Event", "QueueMemberStatus", "Queue", "sales", "Interface", "PJSIP/1001")
		s.send("Event", "QueueMember", "Queue", "sales", "Location", "PJSIP/1001", "ActionID", id)
		s.send("Event", "QueueMember", "Queue", "sales", "Location", "PJSIP/1002", "ActionID", id)
		s.send("Event", "QueueStatusComplete", "ActionID", id, "EventList", "Complete", "ListItems", "3")
	})
	events := make(chan Message, 10)
	cfg := testConfig(srv, &logBuffer{})
	cfg.OnEvent = func(m Message) { events <- m }
	c, _ := startConnected(t, srv, cfg)

	resp, items, err := c.ActionList(t.Context(), NewAction(ActionQueueStatus))

	require.NoError(t, err)
	assert.Equal(t, "Queue status will follow", resp.Get("Message"))
	require.Len(t, items, 3)
	assert.Equal(t, "QueueParams", items[0].Event())
	assert.Equal(t, "PJSIP/1001", items[1].Get("Location"))
	assert.Equal(t, "PJSIP/1002", items[2].Get("Location"))
	select {
	case ev := <-events:
		assert.Equal(t, "QueueMemberStatus", ev.Event(), "an event without the ActionID goes to OnEvent")
	case <-time.After(waitTimeout):
		t.Fatal("no event delivered")
	}
}

func TestActionListTimeoutDropsRestOfList(t *testing.T) {
	srv := newFakeAMI(t)
	var listID string
	srv.handle(func(s *fakeSession, req Message) {
		if req.Action() == ActionQueueStatus {
			listID = req.ActionID()
			s.reply(req, "Response", "Success", "EventList", "start")
			s.send("Event", "QueueMember", "Queue", "sales", "ActionID", listID)
			return
		}
		s.send("Event", "QueueMember", "Queue", "support", "ActionID", listID)
		s.send("Event", "QueueStatusComplete", "ActionID", listID, "EventList", "Complete")
		s.send("Event", "QueueMember", "Queue", "billing", "ActionID", listID)
		s.send("Event", "UserEvent", "UserEvent", "after")
		s.reply(req, "Response", "Success")
	})
	events := make(chan Message, 10)
	cfg := testConfig(srv, &logBuffer{})
	cfg.ActionTimeout = 20 * time.Millisecond
	cfg.OnEvent = func(m Message) { events <- m }
	c, _ := startConnected(t, srv, cfg)

	_, _, err := c.ActionList(t.Context(), NewAction(ActionQueueStatus))
	require.ErrorIs(t, err, ErrTimeout)
	_, err = c.Action(t.Context(), NewAction("Continue"))
	require.NoError(t, err)

	first := receive(t, events)
	assert.Equal(t, "QueueMember", first.Event(), "an event after the list has ended goes to OnEvent")
	assert.Equal(t, "billing", first.Get("Queue"))
	assert.Equal(t, "UserEvent", receive(t, events).Event())
}

func TestActionListErrorResponse(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		s.reply(req, "Response", "Error", "Message", "Permission denied")
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	_, items, err := c.ActionList(t.Context(), NewAction(ActionQueueStatus))

	var respErr *ResponseError
	require.ErrorAs(t, err, &respErr)
	assert.Equal(t, "Permission denied", respErr.Message)
	assert.Empty(t, items)
}

func TestActionListWithoutEventList(t *testing.T) {
	srv := newFakeAMI(t)
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	resp, items, err := c.ActionList(t.Context(), NewAction(ActionPing))

	require.NoError(t, err)
	assert.Equal(t, "Pong", resp.Get("Ping"))
	assert.Empty(t, items)
}

func TestActionNotConnectedBeforeRun(t *testing.T) {
	c := New(Config{Username: fakeUser, ActionTimeout: time.Hour})

	_, err := c.Action(context.Background(), NewAction(ActionPing))

	require.ErrorIs(t, err, ErrNotConnected)
	assert.Contains(t, err.Error(), "Ping not sent")
}

func TestActionNotConnectedFailsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	logs := &logBuffer{}
	c := startClient(t, Config{
		Addr: addr, Username: fakeUser, Secret: fakeSecret,
		ActionTimeout: time.Hour, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Logger: logs.logger(),
	})
	require.Eventually(t, func() bool { return c.Stats().Failures >= 2 }, waitTimeout, time.Millisecond)

	// With a one-hour ActionTimeout and no deadline on the context, this
	// returns only because a down client does not wait for a reconnect.
	_, err = c.Action(context.Background(), NewAction(ActionPing))

	require.ErrorIs(t, err, ErrNotConnected)
	assert.Contains(t, err.Error(), "connection refused")
	up, _, lastErr := c.Status()
	assert.False(t, up)
	require.Error(t, lastErr)
	assert.Equal(t, 1, logs.count("AMI connection attempt failed"), "a repeated error is logged once")
}

func TestActionTimeout(t *testing.T) {
	srv := newFakeAMI(t)
	var mu sync.Mutex
	var late []Message
	srv.handle(func(s *fakeSession, req Message) {
		mu.Lock()
		defer mu.Unlock()
		if req.Get("Queue") == "slow" {
			late = append(late, req)
			return
		}
		for _, l := range late {
			s.reply(l, "Response", "Success", "Message", "late")
		}
		late = nil
		s.reply(req, "Response", "Success", "Message", "on time")
	})
	cfg := testConfig(srv, &logBuffer{})
	cfg.ActionTimeout = 20 * time.Millisecond
	c, _ := startConnected(t, srv, cfg)

	_, err := c.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "slow"))

	require.ErrorIs(t, err, ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "outcome of the action is unknown")

	resp, err := c.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "fast"))
	require.NoError(t, err)
	assert.Equal(t, "on time", resp.Get("Message"), "a late response must not be taken for another action's")
	assert.True(t, c.Connected())
}

func TestActionContextDeadline(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(*fakeSession, Message) {})
	cfg := testConfig(srv, &logBuffer{})
	cfg.ActionTimeout = time.Hour
	c, _ := startConnected(t, srv, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()

	_, err := c.Action(ctx, NewAction(ActionQueueAdd, "Queue", "sales"))

	require.ErrorIs(t, err, ErrTimeout)
}

func TestActionContextCanceled(t *testing.T) {
	srv := newFakeAMI(t)
	received := make(chan struct{})
	srv.handle(func(*fakeSession, Message) { close(received) })
	cfg := testConfig(srv, &logBuffer{})
	cfg.ActionTimeout = time.Hour
	c, _ := startConnected(t, srv, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-received
		cancel()
	}()

	_, err := c.Action(ctx, NewAction(ActionQueueAdd, "Queue", "sales"))

	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrTimeout)
}

func TestActionConnectionDropped(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		if req.Action() == ActionQueueAdd {
			s.close()
			return
		}
		s.reply(req, "Response", "Success")
	})
	cfg := testConfig(srv, &logBuffer{})
	cfg.ActionTimeout = time.Hour
	c, _ := startConnected(t, srv, cfg)

	_, err := c.Action(t.Context(), NewAction(ActionQueueAdd, "Queue", "sales"))

	require.ErrorIs(t, err, ErrNotConnected)
	assert.Contains(t, err.Error(), "connection lost while waiting for the response to QueueAdd")
	assert.Contains(t, err.Error(), "outcome of the action is unknown")

	srv.waitLogin(t)
	require.Eventually(t, c.Connected, waitTimeout, time.Millisecond)
	_, err = c.Action(t.Context(), NewAction(ActionPing))
	require.NoError(t, err)
}

func TestActionRejectsAsteriskInputLimits(t *testing.T) {
	srv := newFakeAMI(t)
	sent := make(chan Message, 1)
	srv.handle(func(s *fakeSession, req Message) {
		sent <- req
		s.reply(req, "Response", "Success")
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	_, err := c.Action(t.Context(), NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Reason", strings.Repeat("r", 1100)))
	require.ErrorIs(t, err, ErrInvalidField)
	assert.Contains(t, err.Error(), `"Reason"`)

	many := NewAction(ActionCommand)
	for i := range 130 {
		many.Add("Variable", fmt.Sprintf("v%d=1", i))
	}
	_, err = c.Action(t.Context(), many)
	require.ErrorIs(t, err, ErrInvalidField)

	_, err = c.Action(t.Context(), NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Reason", "a\r\nAction: Logoff"))
	require.ErrorIs(t, err, ErrInvalidField)

	assert.Empty(t, sent, "no rejected action may reach the server")
}

func TestReconnectCallsOnConnect(t *testing.T) {
	srv := newFakeAMI(t)
	connects := make(chan context.Context, 10)
	cfg := testConfig(srv, &logBuffer{})
	cfg.OnConnect = func(ctx context.Context) { connects <- ctx }
	c, first := startConnected(t, srv, cfg)
	firstCtx := receive(t, connects)

	first.close()

	<-firstCtx.Done()
	srv.waitLogin(t)
	secondCtx := receive(t, connects)
	require.NoError(t, secondCtx.Err())
	require.Eventually(t, c.Connected, waitTimeout, time.Millisecond)
	stats := c.Stats()
	assert.Equal(t, uint64(2), stats.Connects)
	assert.Equal(t, uint64(1), stats.Reconnects)
	assert.Equal(t, uint64(1), stats.Disconnects)
}

func TestReconnectLogsEachRecoveryOnce(t *testing.T) {
	srv := newFakeAMI(t)
	logs := &logBuffer{}
	c, first := startConnected(t, srv, testConfig(srv, logs))

	first.close()
	srv.waitLogin(t)
	require.Eventually(t, func() bool { return logs.count("AMI connection restored") == 1 }, waitTimeout, time.Millisecond)

	assert.Equal(t, uint64(2), c.Stats().Connects)
	assert.Equal(t, 1, logs.count("AMI connected"))
	assert.Equal(t, 1, logs.count("AMI connection lost"))
}

func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		if s.id == 1 {
			return // a peer that keeps TCP open but sends no response
		}
		s.reply(req, "Response", "Success", "Ping", "Pong")
	})
	logs := &logBuffer{}
	cfg := testConfig(srv, logs)
	cfg.PingInterval = 10 * time.Millisecond
	cfg.ActionTimeout = 50 * time.Millisecond
	c, first := startConnected(t, srv, cfg)
	require.Equal(t, 1, first.id)

	second := srv.waitLogin(t)

	assert.Equal(t, 2, second.id)
	require.Eventually(t, func() bool { return c.Stats().Disconnects == 1 }, waitTimeout, time.Millisecond)
	assert.Contains(t, logs.String(), "keepalive Ping failed")
}

func TestLoginFailureRetriedWithBackoff(t *testing.T) {
	srv := newFakeAMI(t)
	srv.rejectLogins.Store(3)
	logs := &logBuffer{}
	c, _ := startConnected(t, srv, testConfig(srv, logs))

	stats := c.Stats()
	assert.Equal(t, uint64(4), stats.Attempts)
	assert.Equal(t, uint64(3), stats.Failures)
	assert.Equal(t, uint64(1), stats.Connects)
	assert.Equal(t, 1, logs.count("AMI connection attempt failed"), "the same error is logged once")
	assert.Contains(t, logs.String(), "Authentication failed")
	assert.NotContains(t, logs.String(), fakeSecret)
	up, _, lastErr := c.Status()
	assert.True(t, up)
	assert.NoError(t, lastErr)
}

func TestLoginFailureReported(t *testing.T) {
	srv := newFakeAMI(t)
	srv.rejectLogins.Store(1 << 30)
	c := startClient(t, testConfig(srv, &logBuffer{}))

	require.Eventually(t, func() bool { return c.Stats().Failures >= 2 }, waitTimeout, time.Millisecond)

	up, _, lastErr := c.Status()
	assert.False(t, up)
	var respErr *ResponseError
	require.ErrorAs(t, lastErr, &respErr)
	assert.Equal(t, ActionLogin, respErr.Action)
	assert.Equal(t, "Authentication failed", respErr.Message)
	assert.Contains(t, lastErr.Error(), `login as "agentd"`)

	// An action while down reports the login error but does not wrap it,
	// so callers see ErrNotConnected and no *ResponseError of their own.
	_, err := c.Action(context.Background(), NewAction(ActionPing))
	require.ErrorIs(t, err, ErrNotConnected)
	assert.Contains(t, err.Error(), "Authentication failed")
	var actionRespErr *ResponseError
	assert.NotErrorAs(t, err, &actionRespErr)
}

func TestLoginSendsEvents(t *testing.T) {
	tests := []struct {
		name    string
		events  string
		onEvent func(Message)
		want    string
	}{
		{name: "default without handler", want: "off"},
		{name: "default with handler", onEvent: func(Message) {}, want: "on"},
		{name: "class list", events: "agent,system", want: "agent,system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeAMI(t)
			cfg := testConfig(srv, &logBuffer{})
			cfg.Events, cfg.OnEvent = tt.events, tt.onEvent

			startConnected(t, srv, cfg)

			login := srv.lastLogin.Load()
			require.NotNil(t, login)
			assert.Equal(t, tt.want, login.Get("Events"))
			assert.Equal(t, fakeUser, login.Get("Username"))
		})
	}
}

func TestEventsDeliveredInOrder(t *testing.T) {
	const n = 200
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		for i := range n {
			s.send("Event", "UserEvent", "Seq", strconv.Itoa(i))
		}
		s.reply(req, "Response", "Success")
	})
	events := make(chan Message, n)
	cfg := testConfig(srv, &logBuffer{})
	cfg.OnEvent = func(m Message) { events <- m }
	c, _ := startConnected(t, srv, cfg)

	_, err := c.Action(t.Context(), NewAction("UserEvent"))
	require.NoError(t, err)

	for i := range n {
		ev := receive(t, events)
		require.Equal(t, strconv.Itoa(i), ev.Get("Seq"))
	}
	assert.Equal(t, uint64(0), c.Stats().EventsDropped)
}

func TestEventsDoNotBlockResponses(t *testing.T) {
	const queueSize, burst = 4, 50
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		base, _ := strconv.Atoi(req.Get("Base"))
		count, _ := strconv.Atoi(req.Get("Count"))
		for i := range count {
			s.send("Event", "UserEvent", "Seq", strconv.Itoa(base+i))
		}
		s.reply(req, "Response", "Success")
	})
	entered := make(chan int, 100)
	release := make(chan struct{})
	var mu sync.Mutex
	var delivered []int
	logs := &logBuffer{}
	cfg := testConfig(srv, logs)
	cfg.EventQueueSize = queueSize
	cfg.OnEvent = func(m Message) {
		seq, _ := strconv.Atoi(m.Get("Seq"))
		entered <- seq
		<-release
		mu.Lock()
		delivered = append(delivered, seq)
		mu.Unlock()
	}
	c, _ := startConnected(t, srv, cfg)
	_, err := c.Action(t.Context(), NewAction("UserEvent", "Base", "0", "Count", "1"))
	require.NoError(t, err)
	require.Equal(t, 0, receive(t, entered), "the handler now blocks")

	// The response of this action follows the burst of events, so it
	// arrives only if the read loop drops events instead of waiting for
	// queue space.
	_, err = c.Action(t.Context(), NewAction("UserEvent", "Base", "100", "Count", strconv.Itoa(burst)))
	require.NoError(t, err)

	stats := c.Stats()
	assert.Equal(t, uint64(burst-queueSize), stats.EventsDropped)
	assert.Equal(t, uint64(1+burst), stats.EventsReceived)
	assert.Equal(t, 1, logs.count("dropping events"))

	close(release)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == 1+queueSize
	}, waitTimeout, time.Millisecond)
	_, err = c.Action(t.Context(), NewAction("UserEvent", "Base", "1000", "Count", "1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == 1+queueSize+1
	}, waitTimeout, time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{0, 100, 101, 102, 103, 1000}, delivered, "the first events of the burst are kept, in order")
	assert.Equal(t, 1, logs.count("accepts events again"))
}

func TestMalformedMessageSkipped(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		s.write([]byte("Event: Broken\r\nno colon here\r\n\r\n"))
		s.reply(req, "Response", "Success")
	})
	logs := &logBuffer{}
	c, _ := startConnected(t, srv, testConfig(srv, logs))

	_, err := c.Action(t.Context(), NewAction(ActionPing))
	require.NoError(t, err)
	_, err = c.Action(t.Context(), NewAction(ActionPing))
	require.NoError(t, err)

	assert.Equal(t, uint64(2), c.Stats().MalformedMessages)
	assert.Equal(t, 1, logs.count("AMI message with a malformed line skipped"))
	assert.True(t, c.Connected())
}

func TestLineTooLongClosesConnection(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(s *fakeSession, req Message) {
		if s.id == 1 {
			s.send("Event", "UserEvent", "Data", strings.Repeat("x", 100))
		}
		s.reply(req, "Response", "Success")
	})
	logs := &logBuffer{}
	cfg := testConfig(srv, logs)
	cfg.Limits = Limits{MaxLineLength: 64}
	c, _ := startConnected(t, srv, cfg)

	_, err := c.Action(t.Context(), NewAction(ActionPing))

	require.ErrorIs(t, err, ErrNotConnected)
	srv.waitLogin(t)
	assert.Contains(t, logs.String(), "line too long")
	require.Eventually(t, c.Connected, waitTimeout, time.Millisecond)
}

func TestInvalidBannerRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			_ = nc.Close()
		}
	})
	defer wg.Wait()
	defer ln.Close()
	c := New(Config{Addr: ln.Addr().String(), Username: fakeUser, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, Logger: (&logBuffer{}).logger()})
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(t.Context()) }()

	require.Eventually(t, func() bool { return c.Stats().Failures >= 2 }, waitTimeout, time.Millisecond)
	_, _, lastErr := c.Status()
	require.ErrorIs(t, lastErr, ErrInvalidBanner)

	require.NoError(t, c.Close())
	require.NoError(t, <-runErr)
}

func TestCloseStopsRunAndLogsOff(t *testing.T) {
	srv := newFakeAMI(t)
	c := New(testConfig(srv, &logBuffer{}))
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background()) }()
	srv.waitLogin(t)
	require.Eventually(t, c.Connected, waitTimeout, time.Millisecond)

	require.NoError(t, c.Close())

	require.NoError(t, <-runErr)
	assert.False(t, c.Connected())
	require.Eventually(t, func() bool { return srv.logoffs.Load() == 1 }, waitTimeout, time.Millisecond)
	require.NoError(t, c.Close(), "a second Close is harmless")
	require.ErrorIs(t, c.Run(context.Background()), ErrClosed)
	_, err := c.Action(t.Context(), NewAction(ActionPing))
	require.ErrorIs(t, err, ErrNotConnected)
}

func TestContextCancelStopsRun(t *testing.T) {
	srv := newFakeAMI(t)
	connected := make(chan struct{})
	cfg := testConfig(srv, &logBuffer{})
	cfg.OnConnect = func(ctx context.Context) {
		close(connected)
		<-ctx.Done()
	}
	c := New(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	<-connected

	cancel()

	require.NoError(t, <-runErr)
	assert.False(t, c.Connected())
}

func TestRunTwice(t *testing.T) {
	srv := newFakeAMI(t)
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	require.ErrorIs(t, c.Run(t.Context()), ErrRunning)
}

func TestRunInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no username", cfg: Config{Secret: "x"}},
		{name: "CRLF in secret", cfg: Config{Username: "agentd", Secret: "x\r\nAction: Logoff"}},
		{name: "negative timeout", cfg: Config{Username: "agentd", ActionTimeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.cfg).Run(t.Context())
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.NotContains(t, err.Error(), "Action: Logoff")
		})
	}
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatal("nothing received")
		var zero T
		return zero
	}
}
