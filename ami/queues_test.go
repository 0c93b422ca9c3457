package ami

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

// startQueues connects a Queues to a fake that replies to every action
// with reply and sends each request to the returned channel.
func startQueues(t *testing.T, reply ...string) (*Queues, <-chan Message) {
	t.Helper()
	srv := newFakeAMI(t)
	requests := make(chan Message, 10)
	srv.handle(func(s *fakeSession, req Message) {
		requests <- req
		s.reply(req, reply...)
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))
	return NewQueues(c), requests
}

func withoutActionID(m Message) Message {
	m.Del(KeyActionID)
	return m
}

func TestQueuesAddMemberSends(t *testing.T) {
	q, requests := startQueues(t, "Response", "Success", "Message", "Added interface to queue")

	err := q.AddMember(t.Context(), agent.Member{Queue: "sales", Interface: "PJSIP/1001", MemberName: "Agent 1001", Penalty: 2})

	require.NoError(t, err)
	assert.Equal(t, NewAction(ActionQueueAdd,
		"Queue", "sales", "Interface", "PJSIP/1001", "Penalty", "2", "Paused", "false", "MemberName", "Agent 1001"),
		withoutActionID(<-requests))
}

func TestQueuesAddMemberWithoutMemberName(t *testing.T) {
	q, requests := startQueues(t, "Response", "Success")

	require.NoError(t, q.AddMember(t.Context(), agent.Member{Queue: "sales", Interface: "PJSIP/1001"}))

	_, ok := (<-requests).Lookup("MemberName")
	assert.False(t, ok)
}

func TestQueuesRemoveMemberSends(t *testing.T) {
	q, requests := startQueues(t, "Response", "Success", "Message", "Removed interface from queue")

	require.NoError(t, q.RemoveMember(t.Context(), "sales", "PJSIP/1001"))

	assert.Equal(t, NewAction(ActionQueueRemove, "Queue", "sales", "Interface", "PJSIP/1001"), withoutActionID(<-requests))
}

func TestQueuesPauseMemberSends(t *testing.T) {
	tests := []struct {
		name   string
		paused bool
		reason string
		want   Message
	}{
		{
			name: "pause with reason", paused: true, reason: "lunch",
			want: NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "true", "Reason", "lunch"),
		},
		{
			name: "pause without reason", paused: true,
			want: NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "true"),
		},
		{
			name: "unpause with reason", paused: false, reason: "lunch",
			want: NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "false", "Reason", "lunch"),
		},
		{
			name: "unpause without reason", paused: false,
			want: NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "false"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, requests := startQueues(t, "Response", "Success", "Message", "Interface paused successfully")

			require.NoError(t, q.PauseMember(t.Context(), "PJSIP/1001", tt.paused, tt.reason))

			req := <-requests
			assert.Equal(t, tt.want, withoutActionID(req))
			_, hasQueue := req.Lookup("Queue")
			assert.False(t, hasQueue, "QueuePause without Queue acts on every queue")
		})
	}
}

func TestQueuesErrorMapping(t *testing.T) {
	add := func(q *Queues, ctx context.Context) error {
		return q.AddMember(ctx, agent.Member{Queue: "sales", Interface: "PJSIP/1001"})
	}
	remove := func(q *Queues, ctx context.Context) error { return q.RemoveMember(ctx, "sales", "PJSIP/1001") }
	pause := func(q *Queues, ctx context.Context) error { return q.PauseMember(ctx, "PJSIP/1001", true, "") }

	tests := []struct {
		name    string
		call    func(*Queues, context.Context) error
		message string
		want    error
	}{
		{name: "add already there", call: add, message: "Unable to add interface: Already there", want: agent.ErrAlreadyMember},
		{name: "add no such queue", call: add, message: "Unable to add interface to queue: No such queue", want: agent.ErrNoSuchQueue},
		{name: "remove not there", call: remove, message: "Unable to remove interface: Not there", want: agent.ErrNotMember},
		{name: "remove no such queue", call: remove, message: "Unable to remove interface from queue: No such queue", want: agent.ErrNoSuchQueue},
		{name: "pause interface not found", call: pause, message: "Interface not found", want: agent.ErrNotMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := startQueues(t, "Response", "Error", "Message", tt.message)

			err := tt.call(q, t.Context())

			require.ErrorIs(t, err, tt.want)
			var respErr *ResponseError
			require.ErrorAs(t, err, &respErr, "the ami error stays in the chain")
			assert.Equal(t, tt.message, respErr.Message)
			var asteriskErr *agent.AsteriskError
			assert.NotErrorAs(t, err, &asteriskErr)
		})
	}
}

func TestQueuesOtherErrorBecomesAsteriskError(t *testing.T) {
	tests := []struct {
		name    string
		call    func(*Queues, context.Context) error
		action  string
		message string
	}{
		{
			name:    "remove static member",
			call:    func(q *Queues, ctx context.Context) error { return q.RemoveMember(ctx, "sales", "PJSIP/1001") },
			action:  ActionQueueRemove,
			message: "Member not dynamic",
		},
		{
			name: "add out of memory",
			call: func(q *Queues, ctx context.Context) error {
				return q.AddMember(ctx, agent.Member{Queue: "s", Interface: "i"})
			},
			action:  ActionQueueAdd,
			message: "Out of memory",
		},
		{
			name:    "pause missing parameters",
			call:    func(q *Queues, ctx context.Context) error { return q.PauseMember(ctx, "PJSIP/1001", false, "") },
			action:  ActionQueuePause,
			message: "Need 'Interface' and 'Paused' parameters.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := startQueues(t, "Response", "Error", "Message", tt.message)

			err := tt.call(q, t.Context())

			var asteriskErr *agent.AsteriskError
			require.ErrorAs(t, err, &asteriskErr)
			assert.Equal(t, tt.action, asteriskErr.Action)
			assert.Equal(t, tt.message, asteriskErr.Message)
			for _, sentinel := range []error{agent.ErrAlreadyMember, agent.ErrNoSuchQueue, agent.ErrNotMember, agent.ErrAsteriskUnavailable} {
				assert.NotErrorIs(t, err, sentinel)
			}
		})
	}
}

func TestQueuesNotConnected(t *testing.T) {
	q := NewQueues(New(Config{Username: fakeUser}))

	err := q.AddMember(t.Context(), agent.Member{Queue: "sales", Interface: "PJSIP/1001"})

	require.ErrorIs(t, err, agent.ErrAsteriskUnavailable)
	require.ErrorIs(t, err, ErrNotConnected)
	var respErr *ResponseError
	assert.NotErrorAs(t, err, &respErr)
}

func TestQueuesNotConnectedAfterLoginFailure(t *testing.T) {
	srv := newFakeAMI(t)
	srv.rejectLogins.Store(1 << 30)
	c := startClient(t, testConfig(srv, &logBuffer{}))
	require.Eventually(t, func() bool { return c.Stats().Failures >= 1 }, waitTimeout, time.Millisecond)

	err := NewQueues(c).PauseMember(t.Context(), "PJSIP/1001", true, "")

	require.ErrorIs(t, err, agent.ErrAsteriskUnavailable)
	var asteriskErr *agent.AsteriskError
	assert.NotErrorAs(t, err, &asteriskErr, "a failed login is no error reply to QueuePause")
}

func TestQueuesTimeout(t *testing.T) {
	srv := newFakeAMI(t)
	srv.handle(func(*fakeSession, Message) {})
	cfg := testConfig(srv, &logBuffer{})
	cfg.ActionTimeout = 20 * time.Millisecond
	c, _ := startConnected(t, srv, cfg)

	err := NewQueues(c).RemoveMember(t.Context(), "sales", "PJSIP/1001")

	require.ErrorIs(t, err, agent.ErrAsteriskUnavailable)
	require.ErrorIs(t, err, ErrTimeout)
}

func TestQueuesCanceledIsNotUnavailable(t *testing.T) {
	srv := newFakeAMI(t)
	received := make(chan struct{})
	srv.handle(func(*fakeSession, Message) { close(received) })
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-received
		cancel()
	}()

	err := NewQueues(c).PauseMember(ctx, "PJSIP/1001", true, "")

	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, agent.ErrAsteriskUnavailable)
}

func TestQueuesQueueStatus(t *testing.T) {
	srv := newFakeAMI(t)
	requests := make(chan Message, 1)
	srv.handle(func(s *fakeSession, req Message) {
		requests <- req
		id := req.ActionID()
		s.reply(req, "Response", "Success", "EventList", "start", "Message", "Queue status will follow")
		s.send("Event", "QueueParams", "Queue", "sales", "Max", "0", "ActionID", id)
		s.send("Event", "QueueMember", "Queue", "sales", "Name", "Agent 1001", "Location", "PJSIP/1001",
			"StateInterface", "Stasis:agent-1001", "Membership", "dynamic", "Penalty", "2", "CallsTaken", "3",
			"LastCall", "0", "LastPause", "0", "LoginTime", "1754000000", "InCall", "1", "Status", "2",
			"Paused", "1", "PausedReason", "lunch", "Wrapuptime", "0", "ActionID", id)
		s.send("Event", "QueueMember", "Queue", "sales", "Name", "PJSIP/1002", "Location", "PJSIP/1002",
			"StateInterface", "PJSIP/1002", "Membership", "static", "Penalty", "0", "InCall", "0", "Status", "1",
			"Paused", "0", "PausedReason", "", "ActionID", id)
		s.send("Event", "QueueEntry", "Queue", "sales", "Position", "1", "Channel", "PJSIP/9000-00000001", "ActionID", id)
		s.send("Event", "QueueStatusComplete", "ActionID", id, "EventList", "Complete", "ListItems", "4")
	})
	c, _ := startConnected(t, srv, testConfig(srv, &logBuffer{}))

	members, err := NewQueues(c).QueueStatus(t.Context(), "sales")

	require.NoError(t, err)
	assert.Equal(t, []QueueMember{
		{
			Queue: "sales", MemberName: "Agent 1001", Interface: "PJSIP/1001", StateInterface: "Stasis:agent-1001",
			Membership: "dynamic", Penalty: 2, Status: 2, Paused: true, PausedReason: "lunch", InCall: true,
		},
		{
			Queue: "sales", MemberName: "PJSIP/1002", Interface: "PJSIP/1002", StateInterface: "PJSIP/1002",
			Membership: "static", Status: 1,
		},
	}, members)
	assert.Equal(t, "sales", (<-requests).Get("Queue"))
}

func TestQueuesQueueStatusAllQueues(t *testing.T) {
	q, requests := startQueues(t, "Response", "Success", "EventList", "start")

	// The fake never completes the list, so only the request is checked.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := q.QueueStatus(ctx, "")

	require.ErrorIs(t, err, agent.ErrAsteriskUnavailable)
	_, hasQueue := (<-requests).Lookup("Queue")
	assert.False(t, hasQueue)
}

func TestParseQueueMemberInvalid(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{name: "no queue", msg: msg("Event", "QueueMember", "Location", "PJSIP/1001"), want: "without Queue or Interface"},
		{name: "no interface", msg: msg("Event", "QueueMember", "Queue", "sales"), want: "without Queue or Interface"},
		{name: "bad penalty", msg: msg("Event", "QueueMember", "Queue", "sales", "Location", "x", "Penalty", "high"), want: `Penalty "high"`},
		{name: "bad status", msg: msg("Event", "QueueMember", "Queue", "sales", "Location", "x", "Status", "?"), want: `Status "?"`},
		{name: "bad paused", msg: msg("Event", "QueueMember", "Queue", "sales", "Location", "x", "Paused", "2"), want: `Paused "2"`},
		{name: "bad in call", msg: msg("Event", "QueueMember", "Queue", "sales", "Location", "x", "InCall", "maybe"), want: `InCall "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQueueMember(tt.msg)
			require.ErrorIs(t, err, ErrInvalidEvent)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseQueueMemberFromMemberEvent(t *testing.T) {
	m, err := ParseQueueMember(msg("Event", "QueueMemberAdded", "Queue", "support", "MemberName", "Agent 7",
		"Interface", "Local/7@agent-phones/n", "Membership", "dynamic", "Paused", "0", "Status", "5"))

	require.NoError(t, err)
	assert.Equal(t, QueueMember{Queue: "support", MemberName: "Agent 7", Interface: "Local/7@agent-phones/n",
		Membership: "dynamic", Status: 5}, m)
}

func TestParseQueueMemberPause(t *testing.T) {
	ev, err := ParseQueueMemberPause(msg("Event", "QueueMemberPause", "Privilege", "agent,all", "Queue", "sales",
		"MemberName", "Agent 1001", "Interface", "PJSIP/1001", "StateInterface", "PJSIP/1001", "Paused", "1",
		"PausedReason", "break: 10 min", "Status", "1"))

	require.NoError(t, err)
	assert.Equal(t, QueueMemberPause{Queue: "sales", MemberName: "Agent 1001", Interface: "PJSIP/1001",
		Paused: true, PausedReason: "break: 10 min"}, ev)
}

func TestParseQueueMemberPauseUnpauseWithReason(t *testing.T) {
	ev, err := ParseQueueMemberPause(msg("Event", "QueueMemberPause", "Queue", "sales", "MemberName", "A",
		"Interface", "PJSIP/1001", "Paused", "0", "PausedReason", "back"))

	require.NoError(t, err)
	assert.False(t, ev.Paused)
	assert.Equal(t, "back", ev.PausedReason)
}

func TestParseQueueMemberPauseInvalid(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
	}{
		{name: "other event", msg: msg("Event", "QueueMemberAdded", "Queue", "sales", "Interface", "x", "Paused", "1")},
		{name: "no interface", msg: msg("Event", "QueueMemberPause", "Queue", "sales", "Paused", "1")},
		{name: "no paused", msg: msg("Event", "QueueMemberPause", "Queue", "sales", "Interface", "x")},
		{name: "bad paused", msg: msg("Event", "QueueMemberPause", "Queue", "sales", "Interface", "x", "Paused", "-")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQueueMemberPause(tt.msg)
			require.ErrorIs(t, err, ErrInvalidEvent)
		})
	}
}

func TestMapQueueErrorKeepsOtherErrors(t *testing.T) {
	other := errors.New("something else")
	assert.Same(t, other, mapQueueError(other, queueAddErrors))
}
