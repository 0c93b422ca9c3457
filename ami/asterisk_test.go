package ami

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/testbench"
)

// eventLog collects the events of a Client for tests against Asterisk.
type eventLog struct {
	mu     sync.Mutex
	events []Message
}

func (l *eventLog) add(m Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, m)
}

// find returns the first event for which match is true.
func (l *eventLog) find(match func(Message) bool) (Message, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.events {
		if match(m) {
			return m, true
		}
	}
	return Message{}, false
}

func (l *eventLog) wait(t *testing.T, match func(Message) bool) Message {
	t.Helper()
	var found Message
	require.Eventually(t, func() bool {
		m, ok := l.find(match)
		found = m
		return ok
	}, 10*time.Second, 5*time.Millisecond)
	return found
}

// startAsteriskClient runs a Client logged in to the sandbox as agentd.
func startAsteriskClient(t *testing.T, bench *testbench.Bench) (*Client, *eventLog) {
	t.Helper()
	events := &eventLog{}
	c := startClient(t, Config{
		Addr:          bench.AMIAddr,
		Username:      bench.AMIUser,
		Secret:        bench.AMISecret,
		Events:        "agent,system",
		ActionTimeout: 10 * time.Second,
		PingInterval:  100 * time.Millisecond,
		Logger:        (&logBuffer{}).logger(),
		OnEvent:       events.add,
	})
	require.Eventually(t, c.Connected, 10*time.Second, 5*time.Millisecond)
	return c, events
}

func memberByInterface(members []QueueMember, iface string) (QueueMember, bool) {
	for _, m := range members {
		if m.Interface == iface {
			return m, true
		}
	}
	return QueueMember{}, false
}

func TestAsteriskQueueMembership(t *testing.T) {
	bench := testbench.Require(t)
	c, events := startAsteriskClient(t, bench)
	q := NewQueues(c)
	iface := "Local/" + testbench.UniqueName("9") + "@agent-phones/n"
	member := agent.Member{Queue: "sales", Interface: iface, MemberName: "ami test " + iface, Penalty: 3}
	t.Cleanup(func() { bench.RemoveMember(t, "sales", iface) })
	ctx := t.Context()

	events.wait(t, func(m Message) bool { return m.Event() == EventFullyBooted })

	require.NoError(t, q.AddMember(ctx, member))
	added := events.wait(t, func(m Message) bool {
		return m.Event() == EventQueueMemberAdded && m.Get("Interface") == iface
	})
	assert.Equal(t, "sales", added.Get("Queue"))

	err := q.AddMember(ctx, member)
	require.ErrorIs(t, err, agent.ErrAlreadyMember)

	err = q.AddMember(ctx, agent.Member{Queue: "no-such-queue", Interface: iface})
	require.ErrorIs(t, err, agent.ErrNoSuchQueue)

	members, err := q.QueueStatus(ctx, "sales")
	require.NoError(t, err)
	got, ok := memberByInterface(members, iface)
	require.True(t, ok, "member %s not in QueueStatus of sales", iface)
	assert.Equal(t, member.MemberName, got.MemberName)
	assert.Equal(t, 3, got.Penalty)
	assert.Equal(t, "dynamic", got.Membership)
	assert.False(t, got.Paused)

	require.NoError(t, q.RemoveMember(ctx, "sales", iface))
	err = q.RemoveMember(ctx, "sales", iface)
	require.ErrorIs(t, err, agent.ErrNotMember)

	err = q.RemoveMember(ctx, "no-such-queue", iface)
	require.ErrorIs(t, err, agent.ErrNoSuchQueue)

	members, err = q.QueueStatus(ctx, "sales")
	require.NoError(t, err)
	_, ok = memberByInterface(members, iface)
	assert.False(t, ok, "member %s still in sales after QueueRemove", iface)
}

func TestAsteriskPauseWithReason(t *testing.T) {
	bench := testbench.Require(t)
	c, events := startAsteriskClient(t, bench)
	q := NewQueues(c)
	iface := "Local/" + testbench.UniqueName("9") + "@agent-phones/n"
	t.Cleanup(func() {
		bench.RemoveMember(t, "sales", iface)
		bench.RemoveMember(t, "support", iface)
	})
	ctx := t.Context()

	require.NoError(t, q.AddMember(ctx, agent.Member{Queue: "sales", Interface: iface, MemberName: "pause " + iface}))
	require.NoError(t, q.AddMember(ctx, agent.Member{Queue: "support", Interface: iface, MemberName: "pause " + iface}))

	require.NoError(t, q.PauseMember(ctx, iface, true, "lunch: 30 min"))

	for _, queue := range []string{"sales", "support"} {
		pause := events.wait(t, func(m Message) bool {
			return m.Event() == EventQueueMemberPause && m.Get("Interface") == iface && m.Get("Queue") == queue && m.Get("Paused") == "1"
		})
		ev, err := ParseQueueMemberPause(pause)
		require.NoError(t, err)
		assert.True(t, ev.Paused)
		assert.Equal(t, "lunch: 30 min", ev.PausedReason)
		assert.Equal(t, "pause "+iface, ev.MemberName)

		members, err := q.QueueStatus(ctx, queue)
		require.NoError(t, err)
		got, ok := memberByInterface(members, iface)
		require.True(t, ok)
		assert.True(t, got.Paused, "QueuePause without Queue pauses in %s", queue)
		assert.Equal(t, "lunch: 30 min", got.PausedReason)
	}

	// The bench reads QueueStatus with its own client, so this does not
	// depend on the parser under test.
	benchMember := findBenchMember(bench.QueueMembers(t, "support"), iface)
	require.NotNil(t, benchMember)
	assert.True(t, benchMember.Paused)
	assert.Equal(t, "lunch: 30 min", benchMember.PausedReason)

	queueLog := bench.QueueLog(t)
	require.NoError(t, q.PauseMember(ctx, iface, false, "lunch: 30 min"))
	unpause := events.wait(t, func(m Message) bool {
		return m.Event() == EventQueueMemberPause && m.Get("Interface") == iface && m.Get("Queue") == "sales" && m.Get("Paused") == "0"
	})
	ev, err := ParseQueueMemberPause(unpause)
	require.NoError(t, err)
	assert.Equal(t, "lunch: 30 min", ev.PausedReason, "Asterisk 22 reports the reason of an unpause")
	assert.True(t, hasQueueLogLine(queueLog.Lines(t), "sales", "pause "+iface, "UNPAUSE", "lunch: 30 min"), "UNPAUSE line with the reason in queue_log")

	members, err := q.QueueStatus(ctx, "sales")
	require.NoError(t, err)
	got, ok := memberByInterface(members, iface)
	require.True(t, ok)
	assert.False(t, got.Paused)

	err = q.PauseMember(ctx, "Local/"+testbench.UniqueName("9")+"@agent-phones/n", true, "")
	require.ErrorIs(t, err, agent.ErrNotMember)
}

func TestAsteriskQueueStatusAllQueues(t *testing.T) {
	bench := testbench.Require(t)
	c, _ := startAsteriskClient(t, bench)

	resp, items, err := c.ActionList(t.Context(), NewAction(ActionQueueStatus))

	require.NoError(t, err)
	assert.Equal(t, "start", resp.Get(KeyEventList))
	var queues []string
	for _, ev := range items {
		if ev.Event() == EventQueueParams {
			queues = append(queues, ev.Get("Queue"))
		}
	}
	for _, want := range []string{"sales", "support", "billing", "demo"} {
		assert.Contains(t, queues, want)
	}
}

func TestAsteriskErrorResponse(t *testing.T) {
	bench := testbench.Require(t)
	c, _ := startAsteriskClient(t, bench)

	_, err := c.Action(t.Context(), NewAction(ActionQueuePause, "Interface", "Local/1@agent-phones/n"))

	var respErr *ResponseError
	require.ErrorAs(t, err, &respErr)
	assert.Equal(t, "Need 'Interface' and 'Paused' parameters.", respErr.Message)
}

func TestAsteriskLoginFailure(t *testing.T) {
	bench := testbench.Require(t)
	logs := &logBuffer{}
	c := startClient(t, Config{
		Addr: bench.AMIAddr, Username: bench.AMIUser, Secret: "wrong-" + bench.AMISecret,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: logs.logger(),
	})

	// Asterisk 22 waits one second before it responds to a failed login.
	require.Eventually(t, func() bool { return c.Stats().Failures >= 1 }, 10*time.Second, 10*time.Millisecond)

	_, _, lastErr := c.Status()
	var respErr *ResponseError
	require.ErrorAs(t, lastErr, &respErr)
	assert.Equal(t, "Authentication failed", respErr.Message)
	assert.NotContains(t, logs.String(), bench.AMISecret, "the secret must not be logged")
	_, err := c.Action(context.Background(), NewAction(ActionPing))
	require.ErrorIs(t, err, ErrNotConnected)
}

func hasQueueLogLine(lines []testbench.QueueLogLine, queue, agentName, event, data string) bool {
	for _, l := range lines {
		if l.Queue == queue && l.Agent == agentName && l.Event == event && len(l.Data) > 0 && l.Data[0] == data {
			return true
		}
	}
	return false
}

func findBenchMember(members []testbench.QueueMember, iface string) *testbench.QueueMember {
	for i := range members {
		if members[i].Interface == iface {
			return &members[i]
		}
	}
	return nil
}

func TestAsteriskInputLimitsAccepted(t *testing.T) {
	bench := testbench.Require(t)
	c, _ := startAsteriskClient(t, bench)

	longLine := NewAction(ActionPing, "Reason", strings.Repeat("x", asteriskMaxInputLine-len("Reason: ")))
	_, err := c.Action(t.Context(), longLine)
	require.NoError(t, err, "a line of the maximum length must be accepted")

	manyFields := NewAction(ActionPing)
	for manyFields.Len() < asteriskMaxInputFields-1 {
		manyFields.Add("Variable", "v=1")
	}
	_, err = c.Action(t.Context(), manyFields)
	require.NoError(t, err, "the maximum number of fields, ActionID included, must be accepted")
}
