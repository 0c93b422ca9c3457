package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
)

const testDirectory = `
pauses:
  - {id: "5", name: Lunch, type: recreational}
  - {id: "7", name: Training}
agents:
  - id: "1001"
    name: Ana Perez
    interface: PJSIP/1001
    queues:
      - {name: sales, penalty: 1}
      - {name: support}
  - id: "1002"
    name: Bruno
    interface: PJSIP/1002
    queues:
      - {name: sales}
  - id: "1003"
    name: Carla
    interface: PJSIP/1003
    queues:
      - {name: sales}
      - {name: ghost}
`

type fixture struct {
	svc     *agent.Service
	queues  *agenttest.Queues
	devices *agenttest.DeviceStates
	store   *agenttest.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir, err := agent.ParseDirectory("directory.yaml", []byte(testDirectory))
	require.NoError(t, err)
	f := &fixture{
		queues:  agenttest.NewQueues("sales", "support"),
		devices: agenttest.NewDeviceStates(),
		store:   agenttest.NewStore(),
	}
	f.svc, err = agent.NewService(agent.Config{Directory: dir, Queues: f.queues, DeviceStates: f.devices, Store: f.store})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.Zero(t, f.store.OpenStaged(), "staged changes neither released nor withdrawn")
	})
	return f
}

// reset clears what the fakes recorded so far.
func (f *fixture) reset() {
	f.queues.Calls()
	f.devices.Calls()
	f.store.Changes()
}

func TestLoginAddsEveryQueue(t *testing.T) {
	f := newFixture(t)

	res, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, agent.StateReady, res.Status.Session.State)
	assert.Equal(t, []string{
		"QueueAdd sales PJSIP/1001 penalty=1 name=1001_Ana-Perez",
		"QueueAdd support PJSIP/1001 penalty=0 name=1001_Ana-Perez",
	}, f.queues.Calls())
	assert.Equal(t, "NOT_INUSE", f.devices.State("Stasis:agent-1001"))
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, agent.EventLoggedIn, changes[0].Type)
	assert.Equal(t, agent.StateOffline, changes[0].Previous.State)
	assert.Equal(t, uint64(1), changes[0].Session.Revision)
	assert.Len(t, changes[0].Session.Members, 2)
}

func TestLoginNoSuchQueueWarns(t *testing.T) {
	f := newFixture(t)

	res, err := f.svc.Login(t.Context(), "1003", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, []agent.Warning{{Code: agent.WarningNoSuchQueue, Queue: "ghost"}}, res.Warnings)
	onlySales := []agent.Member{{Queue: "sales", Interface: "PJSIP/1003", MemberName: "1003_Carla"}}
	assert.Equal(t, onlySales, res.Status.Session.Members)
	// The change staged with both queues is withdrawn, and the change
	// with the queue Asterisk has is committed.
	withdrawn := f.store.Withdrawn()
	require.Len(t, withdrawn, 1)
	assert.Len(t, withdrawn[0].Session.Members, 2)
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, onlySales, changes[0].Session.Members)
	assert.Equal(t, uint64(1), changes[0].Session.Revision)
}

// commitOnlyStore hides the Stage method of the test store.
type commitOnlyStore struct{ agent.Store }

func TestStoreWithoutStagingCommitsAfterAsterisk(t *testing.T) {
	dir, err := agent.ParseDirectory("directory.yaml", []byte(testDirectory))
	require.NoError(t, err)
	queues := agenttest.NewQueues("sales", "support")
	store := agenttest.NewStore()
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: agenttest.NewDeviceStates(), Store: commitOnlyStore{store}})
	require.NoError(t, err)
	ctx := t.Context()

	_, err = svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	_, err = svc.Unpause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	_, err = svc.Logout(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)

	var types []agent.EventType
	for _, c := range store.Changes() {
		types = append(types, c.Type)
	}
	assert.Equal(t, []agent.EventType{agent.EventLoggedIn, agent.EventPaused, agent.EventUnpaused, agent.EventLoggedOut}, types)
	assert.Zero(t, store.OpenStaged())
}

func TestLoginWhileLoggedInRepairsAndUnpauses(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	require.NoError(t, f.queues.RemoveMember(ctx, "support", "PJSIP/1001")) // lost outside agentd
	f.reset()

	res, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, agent.StateReady, res.Status.Session.State)
	assert.Equal(t, []string{
		"QueueAdd sales PJSIP/1001 penalty=1 name=1001_Ana-Perez",
		"QueueAdd support PJSIP/1001 penalty=0 name=1001_Ana-Perez",
		"QueuePause PJSIP/1001 paused=false reason=5",
	}, f.queues.Calls())
	assert.Len(t, f.queues.QueueMembers("support"), 1)
	assert.False(t, f.queues.QueueMembers("sales")[0].Paused)
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, agent.StatePaused, changes[0].Previous.State)
}

func TestLoginWhileReadyAndExactCommitsNothing(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1002", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	_, err = f.svc.Login(t.Context(), "1002", agent.SourceAPI)
	require.NoError(t, err)

	assert.Empty(t, f.store.Changes())
	assert.Empty(t, f.store.Withdrawn(), "nothing staged for a login that changes nothing")
	assert.Equal(t, []string{
		"QueueAdd sales PJSIP/1002 penalty=0 name=1002_Bruno",
		"QueuePause PJSIP/1002 paused=false reason=",
	}, f.queues.Calls())
}

func TestLogoutWhileLoggedOutSendsNothing(t *testing.T) {
	f := newFixture(t)

	res, err := f.svc.Logout(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, agent.StateOffline, res.Status.Session.State)
	assert.Empty(t, f.queues.Calls())
	assert.Empty(t, f.devices.Calls())
	assert.Empty(t, f.store.Changes())
}

func TestLogoutUnpausesThenRemoves(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()
	var order []string
	var mu sync.Mutex
	f.queues.Hook = func(call string) { mu.Lock(); order = append(order, call[:10]); mu.Unlock() }

	res, err := f.svc.Logout(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, agent.StateOffline, res.Status.Session.State)
	assert.Equal(t, []string{"QueuePause", "QueueRemov", "QueueRemov"}, order)
	assert.Empty(t, f.queues.QueueMembers("sales"))
	assert.Empty(t, f.queues.QueueMembers("support"))
	assert.Equal(t, "UNAVAILABLE", f.devices.State("Stasis:agent-1001"))
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, agent.EventLoggedOut, changes[0].Type)
}

func TestLogoutRemovesRecordedMembersAfterDirectoryChange(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1002", agent.SourceAPI)
	require.NoError(t, err)
	dir, err := agent.ParseDirectory("directory.yaml", []byte(`
agents:
  - {id: "1002", name: Bruno, interface: PJSIP/2002, queues: [{name: support}]}
`))
	require.NoError(t, err)
	f.svc.SetDirectory(dir)
	f.reset()

	_, err = f.svc.Logout(t.Context(), "1002", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, []string{
		"QueuePause PJSIP/1002 paused=false reason=",
		"QueueRemove sales PJSIP/1002",
	}, f.queues.Calls())
}

func TestPauseWhileLoggedOutIsRejected(t *testing.T) {
	f := newFixture(t)

	_, err := f.svc.Pause(t.Context(), "1001", "5", agent.SourceAPI)

	require.ErrorIs(t, err, agent.ErrNotLoggedIn)
	assert.Equal(t, agent.CodeNotLoggedIn, agent.ErrorCode(err))
	assert.Empty(t, f.queues.Calls())
	assert.Empty(t, f.devices.Calls())
}

func TestPauseSendsReason(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	res, err := f.svc.Pause(t.Context(), "1001", "5", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, []string{"QueuePause PJSIP/1001 paused=true reason=5"}, f.queues.Calls())
	assert.Equal(t, agent.StatePaused, res.Status.Session.State)
	require.NotNil(t, res.Status.Pause)
	assert.Equal(t, "Lunch", res.Status.Pause.Name)
	assert.Equal(t, "ONHOLD", f.devices.State("Stasis:agent-1001"))
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	require.NotNil(t, changes[0].Pause)
	assert.Equal(t, agent.PauseRecreational, changes[0].Pause.Type)
}

func TestPauseSwitchesToAnotherPause(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	res, err := f.svc.Pause(ctx, "1001", "7", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, "7", res.Status.Session.PauseID)
	assert.Equal(t, []string{"QueuePause PJSIP/1001 paused=true reason=7"}, f.queues.Calls())
	assert.Equal(t, "7", f.queues.QueueMembers("sales")[0].Reason)
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, "5", changes[0].Previous.PauseID)
}

func TestPauseSamePauseSendsNothing(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(t.Context(), "1001", "0", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	_, err = f.svc.Pause(t.Context(), "1001", "0", agent.SourceAPI)
	require.NoError(t, err)

	assert.Empty(t, f.queues.Calls())
	assert.Empty(t, f.store.Changes())
}

func TestPauseUnknownPauseIsRejected(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	_, err = f.svc.Pause(t.Context(), "1001", "99", agent.SourceAPI)

	require.ErrorIs(t, err, agent.ErrUnknownPause)
	assert.Empty(t, f.queues.Calls())
}

func TestUnpauseOtherPauseIsMismatch(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	_, err = f.svc.Unpause(ctx, "1001", "0", agent.SourceAPI)

	require.ErrorIs(t, err, agent.ErrPauseMismatch)
	assert.Equal(t, agent.CodePauseMismatch, agent.ErrorCode(err))
	assert.Empty(t, f.queues.Calls())
	assert.Empty(t, f.store.Changes())
	st, err := f.svc.Status("1001")
	require.NoError(t, err)
	assert.Equal(t, "5", st.Session.PauseID)
}

func TestUnpauseWhileReadySendsNothing(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	res, err := f.svc.Unpause(t.Context(), "1001", "5", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, agent.StateReady, res.Status.Session.State)
	assert.Empty(t, f.queues.Calls())
	assert.Empty(t, f.devices.Calls())
}

func TestUnpauseLeavesPause(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "0", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	res, err := f.svc.Unpause(ctx, "1001", "0", agent.SourceAPI)
	require.NoError(t, err)

	assert.Equal(t, agent.StateReady, res.Status.Session.State)
	assert.Equal(t, []string{"QueuePause PJSIP/1001 paused=false reason=0"}, f.queues.Calls())
	assert.Equal(t, "NOT_INUSE", f.devices.State("Stasis:agent-1001"))
}

func TestUnpauseRemovedPauseStillAllowed(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1002", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1002", "7", agent.SourceAPI)
	require.NoError(t, err)
	dir, err := agent.ParseDirectory("directory.yaml", []byte(`
agents:
  - {id: "1002", name: Bruno, interface: PJSIP/1002, queues: [{name: sales}]}
`))
	require.NoError(t, err)
	f.svc.SetDirectory(dir)

	_, err = f.svc.Unpause(ctx, "1002", "7", agent.SourceAPI)
	require.NoError(t, err)

	_, err = f.svc.Unpause(ctx, "1002", "7", agent.SourceAPI)
	require.ErrorIs(t, err, agent.ErrUnknownPause)
}

func TestUnknownAgentIsForbidden(t *testing.T) {
	f := newFixture(t)

	_, err := f.svc.Login(t.Context(), "9999", agent.SourceAPI)

	require.ErrorIs(t, err, agent.ErrUnknownAgent)
	assert.Equal(t, agent.CodeUnknownAgent, agent.ErrorCode(err))
}

func TestLoginUnavailableUndoesAdds(t *testing.T) {
	f := newFixture(t)
	f.queues.Fail = func(call string) error {
		if call == "QueueAdd support PJSIP/1001 penalty=0 name=1001_Ana-Perez" {
			return fmt.Errorf("%w: connection closed", agent.ErrAsteriskUnavailable)
		}
		return nil
	}

	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)

	require.ErrorIs(t, err, agent.ErrAsteriskUnavailable)
	assert.Equal(t, agent.CodeAsteriskUnavailable, agent.ErrorCode(err))
	assert.Empty(t, f.queues.QueueMembers("sales"), "the member added before the failure is removed again")
	assert.Empty(t, f.store.Changes())
	assert.Len(t, f.store.Withdrawn(), 1, "the staged login is withdrawn")
	st, err := f.svc.Status("1001")
	require.NoError(t, err)
	assert.Equal(t, agent.StateOffline, st.Session.State)
}

func TestPauseFailureRestoresDevice(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()
	f.queues.Fail = func(call string) error {
		if strings.HasPrefix(call, "QueuePause") {
			return &agent.AsteriskError{Action: "QueuePause", Message: "Interface not found"}
		}
		return nil
	}

	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)

	require.Error(t, err)
	// The device change runs alongside QueuePause and is set back after
	// it failed.
	assert.Equal(t, []string{"Stasis:agent-1001=ONHOLD", "Stasis:agent-1001=NOT_INUSE"}, f.devices.Calls())
	assert.Equal(t, "NOT_INUSE", f.devices.State("Stasis:agent-1001"))
	assert.Empty(t, f.store.Changes())
	withdrawn := f.store.Withdrawn()
	require.Len(t, withdrawn, 1)
	assert.Equal(t, agent.EventPaused, withdrawn[0].Type)
}

func TestPauseDeviceStateFailureRestoresPause(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.devices.Fail = func(string, string) error {
		return &agent.AsteriskError{Action: "PUT deviceStates", Message: "Asterisk not booted"}
	}

	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)

	var asteriskErr *agent.AsteriskError
	require.ErrorAs(t, err, &asteriskErr)
	assert.Equal(t, agent.CodeAsteriskError, agent.ErrorCode(err))
	assert.False(t, f.queues.QueueMembers("sales")[0].Paused, "the pause is undone")
	st, err := f.svc.Status("1001")
	require.NoError(t, err)
	assert.Equal(t, agent.StateReady, st.Session.State)
}

func TestStoreFailureUndoesLogin(t *testing.T) {
	f := newFixture(t)
	f.store.Fail = func(agent.Change) error { return errors.New("outbox full") }

	_, err := f.svc.Login(t.Context(), "1002", agent.SourceAPI)

	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	assert.Equal(t, agent.CodeStoreUnavailable, agent.ErrorCode(err))
	assert.Empty(t, f.queues.QueueMembers("sales"))
}

func TestRestoreThenUnpause(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	dir := f.svc.Directory()

	restarted, err := agent.NewService(agent.Config{Directory: dir, Queues: f.queues, DeviceStates: f.devices, Store: f.store})
	require.NoError(t, err)
	n, err := restarted.Restore(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	res, err := restarted.Unpause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), res.Status.Session.Revision)
}

func TestRequestsForOneAgentRunInArrivalOrder(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	// The first pause blocks inside Asterisk until the others are queued.
	release := make(chan struct{})
	first := true
	var mu sync.Mutex
	f.queues.Hook = func(string) {
		mu.Lock()
		wait := first
		first = false
		mu.Unlock()
		if wait {
			<-release
		}
	}
	pauses := []string{"5", "7", "0", "00"}
	var wg sync.WaitGroup
	for i, p := range pauses {
		wg.Go(func() {
			_, err := f.svc.Pause(ctx, "1001", p, agent.SourceAPI)
			assert.NoError(t, err)
		})
		// Let request i reach the agent lock before request i+1 is sent.
		waitQueued(t, f, i)
	}
	close(release)
	wg.Wait()

	var got []string
	for _, c := range f.store.Changes() {
		got = append(got, c.Session.PauseID)
	}
	assert.Equal(t, pauses, got)
}

// waitQueued waits until the first request is inside Asterisk and
// requests 1..i are waiting for the agent lock.
func waitQueued(t *testing.T, f *fixture, i int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return f.svc.Pending("1001") == i+1
	}, 5*time.Second, time.Millisecond)
}

func TestDifferentAgentsRunInParallel(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	release := make(chan struct{})
	f.queues.Hook = func(call string) {
		if call == "QueuePause PJSIP/1001 paused=true reason=5" {
			<-release
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
		done <- err
	}()

	// Agent 1002 logs in while 1001's pause is still held inside Asterisk.
	_, err = f.svc.Login(ctx, "1002", agent.SourceAPI)
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-done)
}

func TestLockWaitHonoursContext(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	release := make(chan struct{})
	f.queues.Hook = func(string) { <-release }
	first := make(chan struct{})
	go func() {
		defer close(first)
		_, _ = f.svc.Pause(context.Background(), "1001", "5", agent.SourceAPI)
	}()
	waitQueued(t, f, 0)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = f.svc.Pause(ctx, "1001", "7", agent.SourceAPI)

	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, agent.CodeTimeout, agent.ErrorCode(err))
	close(release)
	<-first
}

func TestReloadLogsOutRemovedAgents(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, id := range []string{"1001", "1002"} {
		_, err := f.svc.Login(ctx, id, agent.SourceAPI)
		require.NoError(t, err)
	}
	_, err := f.svc.Pause(ctx, "1002", "5", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()
	dir, err := agent.ParseDirectory("directory.yaml", []byte(`
agents:
  - {id: "1001", name: Ana Perez, interface: PJSIP/1001, queues: [{name: sales, penalty: 1}, {name: support}]}
`))
	require.NoError(t, err)

	removed, err := f.svc.Reload(ctx, dir)
	require.NoError(t, err)

	assert.Equal(t, []string{"1002"}, removed)
	assert.Equal(t, []string{
		"QueuePause PJSIP/1002 paused=false reason=5",
		"QueueRemove sales PJSIP/1002",
	}, f.queues.Calls())
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, agent.EventLoggedOut, changes[0].Type)
	assert.Equal(t, agent.SourceReconcile, changes[0].Source)
	assert.Len(t, f.queues.QueueMembers("sales"), 1, "agent 1001 stays")
}

func TestRequestsWaitForRestore(t *testing.T) {
	dir, err := agent.ParseDirectory("directory.yaml", []byte(testDirectory))
	require.NoError(t, err)
	store := agenttest.NewStore()
	queues := agenttest.NewQueues("sales", "support")
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: agenttest.NewDeviceStates(), Store: store, RestoreRequired: true})
	require.NoError(t, err)

	_, err = svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	assert.Equal(t, agent.CodeStoreUnavailable, agent.ErrorCode(err))
	_, err = svc.Status("1001")
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	assert.Empty(t, queues.Calls(), "nothing is sent before the sessions are loaded")
	assert.False(t, svc.Restored())

	_, err = svc.Restore(t.Context())
	require.NoError(t, err)
	_, err = svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
}

func TestRangeSessionsSeesEveryCurrentSession(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, id := range []string{"1001", "1002"} {
		_, err := f.svc.Login(ctx, id, agent.SourceAPI)
		require.NoError(t, err)
	}
	_, err := f.svc.Pause(ctx, "1002", "5", agent.SourceAPI)
	require.NoError(t, err)

	states := map[string]agent.State{}
	f.svc.RangeSessions(func(s *agent.Session) { states[s.AgentID] = s.State })

	assert.Equal(t, map[string]agent.State{"1001": agent.StateReady, "1002": agent.StatePaused}, states)
}
