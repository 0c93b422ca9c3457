package ami

import (
	"context"
	"fmt"
	"slices"
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
	c := startClient(t, asteriskConfig(bench, events))
	require.Eventually(t, c.Connected, 10*time.Second, 5*time.Millisecond)
	return c, events
}

// asteriskConfig returns the configuration of a client of the sandbox
// that logs in as agentd and records its events in events.
func asteriskConfig(bench *testbench.Bench, events *eventLog) Config {
	return Config{
		Addr:          bench.AMIAddr,
		Username:      bench.AMIUser,
		Secret:        bench.AMISecret,
		Events:        "agent,system",
		ActionTimeout: 10 * time.Second,
		PingInterval:  100 * time.Millisecond,
		Logger:        (&logBuffer{}).logger(),
		OnEvent:       events.add,
	}
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

// startAsteriskPool runs a Pool of size clients logged in to the sandbox as
// agentd and waits until every client is connected.
func startAsteriskPool(t *testing.T, bench *testbench.Bench, size int) (*Pool, *eventLog) {
	t.Helper()
	events := &eventLog{}
	p := startPool(t, asteriskConfig(bench, events), size)
	require.Eventually(t, func() bool {
		return p.events.Connected() && p.ConnectedActionClients() == size-1
	}, 10*time.Second, 5*time.Millisecond)
	return p, events
}

func TestAsteriskPoolQueueMembership(t *testing.T) {
	bench := testbench.Require(t)
	p, events := startAsteriskPool(t, bench, 3)
	var ifaces []string
	for range 6 {
		iface := "Local/" + testbench.UniqueName("9") + "@agent-phones/n"
		ifaces = append(ifaces, iface)
		t.Cleanup(func() { bench.RemoveMember(t, "sales", iface) })
	}
	ctx := t.Context()

	// Each client adds one member by itself, so every session, the
	// action-only ones with "Events: off" included, is shown to work.
	for i, c := range p.clients() {
		require.NoError(t, NewQueues(c).AddMember(ctx, agent.Member{Queue: "sales", Interface: ifaces[i], MemberName: "pool " + ifaces[i]}))
	}
	// The pool adds the others at the same time.
	q := NewQueues(p)
	var wg sync.WaitGroup
	errs := make([]error, len(ifaces))
	for i := len(p.clients()); i < len(ifaces); i++ {
		wg.Go(func() {
			errs[i] = q.AddMember(ctx, agent.Member{Queue: "sales", Interface: ifaces[i], MemberName: "pool " + ifaces[i]})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, ifaces[i])
	}

	// Asterisk sends the events of every session's actions to the event
	// session only.
	for _, iface := range ifaces {
		events.wait(t, func(m Message) bool { return m.Event() == EventQueueMemberAdded && m.Get("Interface") == iface })
	}
	members, err := q.QueueStatus(ctx, "sales")
	require.NoError(t, err)
	for _, iface := range ifaces {
		_, ok := memberByInterface(members, iface)
		assert.True(t, ok, "member %s not in QueueStatus of sales", iface)
	}

	for i, iface := range ifaces {
		wg.Go(func() { errs[i] = q.RemoveMember(ctx, "sales", iface) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, ifaces[i])
	}
	for _, iface := range ifaces {
		events.wait(t, func(m Message) bool { return m.Event() == EventQueueMemberRemoved && m.Get("Interface") == iface })
	}
	err = q.RemoveMember(ctx, "sales", ifaces[0])
	require.ErrorIs(t, err, agent.ErrNotMember, "the error mapping is the same through a pool")
	for _, c := range p.clients() {
		assert.Zero(t, c.inFlight.Load())
	}
}

// BenchmarkAsteriskPoolQueueAdd compares pools of 1, 2 and 4 clients on the
// sandbox. Each iteration runs, through each pool in turn, one login of an
// agent in 10 queues: one interface added to bench-01 to bench-10 at once,
// then removed from them at once. The pools take turns so that other load
// on the shared sandbox slows all of them alike. p50-add-ns-N is the median
// time of the add batch through the pool of N clients.
//
// Each pool reuses one interface, because Asterisk 22.10.1 keeps a device
// state topic Queue:<queue>_pause_<interface> for every member it ever
// added, also after QueueRemove ("stasis show topics"). With about 230,000
// such topics in the sandbox (2 CPUs), adding a new interface to 10 queues
// at once took a median of 20 ms, and adding an interface added before took
// 1.5 ms.
func BenchmarkAsteriskPoolQueueAdd(b *testing.B) {
	bench := testbench.Require(b)
	sizes := []int{1, 2, 4}
	logins := make([]func() time.Duration, len(sizes))
	for i, size := range sizes {
		logins[i] = benchPoolLogin(b, bench, size)
	}

	adds := make([][]time.Duration, len(sizes))
	for b.Loop() {
		for i, login := range logins {
			adds[i] = append(adds[i], login())
		}
	}
	for i, size := range sizes {
		slices.Sort(adds[i])
		b.ReportMetric(float64(adds[i][len(adds[i])/2].Nanoseconds()), fmt.Sprintf("p50-add-ns-%d", size))
	}
}

// benchPoolLogin starts a pool of size clients on the sandbox and returns a
// function that adds one interface to 10 queues at once, removes it again
// and returns the time of the add batch.
func benchPoolLogin(b *testing.B, bench *testbench.Bench, size int) func() time.Duration {
	const queues = 10
	p := startPool(b, Config{
		Addr: bench.AMIAddr, Username: bench.AMIUser, Secret: bench.AMISecret,
		Events: "agent,system", ActionTimeout: 10 * time.Second, Logger: (&logBuffer{}).logger(),
	}, size)
	require.Eventually(b, func() bool { return p.events.Connected() && p.ConnectedActionClients() == size-1 }, 10*time.Second, 5*time.Millisecond)
	q := NewQueues(p)
	iface := "Local/" + testbench.UniqueName("9") + "@agent-phones/n"
	b.Cleanup(func() {
		for i := 1; i <= queues; i++ {
			bench.RemoveMember(b, fmt.Sprintf("bench-%02d", i), iface)
		}
	})

	return func() time.Duration {
		start := time.Now()
		forEachQueue(queues, func(queue string) {
			if err := q.AddMember(b.Context(), agent.Member{Queue: queue, Interface: iface}); err != nil {
				b.Error(err)
			}
		})
		took := time.Since(start)
		forEachQueue(queues, func(queue string) {
			if err := q.RemoveMember(b.Context(), queue, iface); err != nil {
				b.Error(err)
			}
		})
		return took
	}
}

// forEachQueue calls fn for the queues bench-01 to bench-n of the sandbox
// at once and waits for every call to return.
func forEachQueue(n int, fn func(queue string)) {
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() { fn(fmt.Sprintf("bench-%02d", i)) })
	}
	wg.Wait()
}
