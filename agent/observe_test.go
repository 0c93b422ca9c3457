package agent_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
)

// newObserveFixture is newFixture with outside-change settings.
func newObserveFixture(t *testing.T, policy agent.MemberPolicy, logoutAfter time.Duration) *fixture {
	t.Helper()
	dir, err := agent.ParseDirectory("directory.yaml", []byte(testDirectory))
	require.NoError(t, err)
	f := &fixture{
		queues:  agenttest.NewQueues("sales", "support"),
		devices: agenttest.NewDeviceStates(),
		store:   agenttest.NewStore(),
	}
	f.svc, err = agent.NewService(agent.Config{
		Directory: dir, Queues: f.queues, DeviceStates: f.devices, Store: f.store,
		MemberPolicy: policy, UnavailableLogout: logoutAfter,
	})
	require.NoError(t, err)
	t.Cleanup(f.svc.Close)
	return f
}

// waitChange waits for the next committed change.
func waitChange(t *testing.T, f *fixture) agent.Change {
	t.Helper()
	var got []agent.Change
	require.Eventually(t, func() bool {
		got = append(got, f.store.Changes()...)
		return len(got) > 0
	}, 5*time.Second, time.Millisecond)
	require.Len(t, got, 1, "exactly one change")
	return got[0]
}

// settle waits for queued event handlers and returns what they committed.
func settle(f *fixture) []agent.Change {
	time.Sleep(50 * time.Millisecond)
	return f.store.Changes()
}

func TestOwnPauseEchoesAreIgnored(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	ctx := t.Context()
	_, err := f.svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Unpause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	// The echoes of the pause arrive after the unpause was applied.
	for range 2 {
		f.svc.ObservePause("PJSIP/1001", true, "5")
	}
	for range 2 {
		f.svc.ObservePause("PJSIP/1001", false, "5")
	}

	assert.Empty(t, settle(f))
	assert.Empty(t, f.queues.Calls())
}

func TestOutsidePauseIsAdopted(t *testing.T) {
	cases := []struct {
		reason, pauseID string
	}{
		{"7", "7"},
		{"", agent.PauseSupervisor},
		{"Auto-Pause", agent.DefaultAutopausePauseID},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			f := newObserveFixture(t, agent.MemberRestore, 0)
			_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
			require.NoError(t, err)
			f.reset()
			f.queues.SetExternal("sales", "PJSIP/1001", true, tc.reason)

			f.svc.ObservePause("PJSIP/1001", true, tc.reason)

			c := waitChange(t, f)
			assert.Equal(t, agent.EventPaused, c.Type)
			assert.Equal(t, agent.SourceAsterisk, c.Source)
			assert.Equal(t, tc.pauseID, c.Session.PauseID)
			require.NotNil(t, c.Pause)
			assert.Equal(t, []string{"QueuePause PJSIP/1001 paused=true reason=" + tc.pauseID}, f.queues.Calls())
			assert.True(t, f.queues.QueueMembers("support")[0].Paused, "the pause reaches every queue")
			assert.Equal(t, "ONHOLD", f.devices.State("Stasis:agent-1001"))

			// The echoes of agentd's own QueuePause change nothing more.
			f.svc.ObservePause("PJSIP/1001", true, tc.pauseID)
			f.svc.ObservePause("PJSIP/1001", true, tc.pauseID)
			assert.Empty(t, settle(f))
		})
	}
}

func TestOutsideUnpauseIsAdopted(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(t.Context(), "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	for range 2 {
		f.svc.ObservePause("PJSIP/1001", true, "5") // own echoes
	}
	f.reset()

	f.svc.ObservePause("PJSIP/1001", false, "")

	c := waitChange(t, f)
	assert.Equal(t, agent.EventUnpaused, c.Type)
	assert.Equal(t, agent.StateReady, c.Session.State)
}

func TestPauseOfLoggedOutAgentIgnored(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)

	f.svc.ObservePause("PJSIP/1001", true, "")

	assert.Empty(t, settle(f))
	assert.Empty(t, f.queues.Calls())
}

func TestRemovedMemberIsRestored(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Pause(t.Context(), "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()
	f.queues.RemoveExternal("support", "PJSIP/1001")

	f.svc.ObserveMember(agent.Member{Queue: "support", Interface: "PJSIP/1001"}, false)

	require.Eventually(t, func() bool { return len(f.queues.QueueMembers("support")) == 1 }, 5*time.Second, time.Millisecond)
	m := f.queues.QueueMembers("support")[0]
	assert.True(t, m.Paused)
	assert.Equal(t, "5", m.Reason)
	assert.Empty(t, settle(f), "the session is unchanged")
}

func TestAddedMemberIsRemovedFromLoggedOutAgent(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	f.queues.AddExternal(agent.Member{Queue: "sales", Interface: "PJSIP/1002"}, false)

	f.svc.ObserveMember(agent.Member{Queue: "sales", Interface: "PJSIP/1002"}, true)

	require.Eventually(t, func() bool { return len(f.queues.QueueMembers("sales")) == 0 }, 5*time.Second, time.Millisecond)
}

func TestAdoptPolicyRecordsRemovedMember(t *testing.T) {
	f := newObserveFixture(t, agent.MemberAdopt, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()
	f.queues.RemoveExternal("support", "PJSIP/1001")

	f.svc.ObserveMember(agent.Member{Queue: "support", Interface: "PJSIP/1001"}, false)

	c := waitChange(t, f)
	assert.Equal(t, agent.EventMembersChanged, c.Type)
	assert.Equal(t, []agent.Member{{Queue: "sales", Interface: "PJSIP/1001", MemberName: "1001_Ana-Perez", Penalty: 1}}, c.Session.Members)
	assert.Empty(t, f.queues.QueueMembers("support"))
}

func TestOwnMemberEchoesAreIgnored(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	_, err = f.svc.Logout(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	// The QueueMemberAdded echoes of the login arrive after the logout.
	f.svc.ObserveMember(agent.Member{Queue: "sales", Interface: "PJSIP/1001"}, true)
	f.svc.ObserveMember(agent.Member{Queue: "support", Interface: "PJSIP/1001"}, true)

	assert.Empty(t, settle(f))
	assert.Empty(t, f.queues.Calls())
}

func TestReconcileRestoresAsterisk(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	ctx := t.Context()
	for _, id := range []string{"1001", "1002"} {
		_, err := f.svc.Login(ctx, id, agent.SourceAPI)
		require.NoError(t, err)
	}
	_, err := f.svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(t, err)
	// Asterisk restarted without persistent members, and an old member of
	// logged-out agent 1003 came back.
	f.queues.RemoveExternal("sales", "PJSIP/1001")
	f.queues.SetExternal("support", "PJSIP/1001", false, "")
	f.queues.AddExternal(agent.Member{Queue: "sales", Interface: "PJSIP/1003"}, false)
	f.reset()

	report, err := f.svc.Reconcile(ctx)
	require.NoError(t, err)

	assert.Equal(t, 3, report.Checked)
	assert.Equal(t, []string{"1001", "1003"}, report.Changed)
	assert.Empty(t, report.Failed)
	sales := f.queues.QueueMembers("sales")
	require.Len(t, sales, 2)
	assert.Equal(t, "PJSIP/1001", sales[0].Interface)
	assert.True(t, sales[0].Paused)
	assert.Equal(t, "5", sales[0].Reason)
	assert.True(t, f.queues.QueueMembers("support")[0].Paused)
	assert.Equal(t, "ONHOLD", f.devices.State("Stasis:agent-1001"))
	assert.Equal(t, "NOT_INUSE", f.devices.State("Stasis:agent-1002"))
	changes := f.store.Changes()
	require.Len(t, changes, 2, "one event per agent whose Asterisk state changed")
	for _, c := range changes {
		assert.Equal(t, agent.EventReconciled, c.Type)
		assert.Equal(t, agent.SourceReconcile, c.Source)
	}
}

func TestReconcileFailureDoesNotStopOthers(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	ctx := t.Context()
	for _, id := range []string{"1001", "1002"} {
		_, err := f.svc.Login(ctx, id, agent.SourceAPI)
		require.NoError(t, err)
	}
	f.queues.RemoveExternal("sales", "PJSIP/1001")
	f.queues.RemoveExternal("sales", "PJSIP/1002")
	f.queues.Fail = func(call string) error {
		if call == "QueueAdd sales PJSIP/1001 penalty=1 name=1001_Ana-Perez" {
			return errors.New("Out of memory")
		}
		return nil
	}

	report, err := f.svc.Reconcile(ctx)
	require.NoError(t, err)

	assert.Equal(t, []string{"1001"}, report.Failed)
	assert.Equal(t, []string{"1002"}, report.Changed)
	assert.Len(t, f.queues.QueueMembers("sales"), 1)
}

func TestCallStateFollowsChannels(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()
	a, ok := f.svc.AgentForChannel("PJSIP/1001-0000000a")
	require.True(t, ok)

	f.svc.ObserveCall(a.ID, "chan-1", agent.CallRinging)
	c := waitChange(t, f)
	assert.Equal(t, agent.EventCallStateChanged, c.Type)
	assert.Equal(t, agent.StateRinging, c.Session.Effective())
	assert.Equal(t, "RINGING", f.devices.State("Stasis:agent-1001"))

	f.svc.ObserveCall(a.ID, "chan-1", agent.CallUp)
	c = waitChange(t, f)
	assert.Equal(t, agent.StateOnCall, c.Session.Effective())
	assert.Equal(t, "INUSE", f.devices.State("Stasis:agent-1001"))
	st, err := f.svc.Status("1001")
	require.NoError(t, err)
	assert.Equal(t, agent.StateOnCall, st.Session.Effective())

	f.svc.ObserveCallEnded(a.ID, "chan-1")
	c = waitChange(t, f)
	assert.Equal(t, agent.StateReady, c.Session.Effective())
	assert.Equal(t, "NOT_INUSE", f.devices.State("Stasis:agent-1001"))
}

func TestSyncCallsKeepsNewerEvents(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	// A call starts while the channel list is being read: the list has no
	// channel, the event is newer and wins.
	f.svc.ObserveCall("1001", "chan-1", agent.CallRinging)
	assert.Equal(t, agent.StateRinging, waitChange(t, f).Session.Effective())
	f.svc.SyncCalls(map[string]map[string]agent.CallState{}, map[string]bool{"chan-1": true})
	f.svc.ObserveCall("1001", "chan-1", agent.CallUp)
	c := waitChange(t, f)
	assert.Equal(t, agent.StateRinging, c.Previous.Effective(), "the stale list changed nothing")
	assert.Equal(t, agent.StateOnCall, c.Session.Effective())

	// A call ends while the list is read: the list still has it as up.
	f.svc.ObserveCallEnded("1001", "chan-1")
	assert.Equal(t, agent.StateReady, waitChange(t, f).Session.Effective())
	f.svc.SyncCalls(map[string]map[string]agent.CallState{"1001": {"chan-1": agent.CallUp}}, map[string]bool{"chan-1": true})
	f.svc.ObserveCall("1001", "chan-2", agent.CallRinging)
	c = waitChange(t, f)
	assert.Equal(t, agent.StateReady, c.Previous.Effective(), "the ended call was not brought back")
	assert.Equal(t, agent.StateRinging, c.Session.Effective())

	// Channels without newer events take the listed state: chan-2 ended
	// while no websocket was open, chan-3 is up.
	f.svc.SyncCalls(map[string]map[string]agent.CallState{"1001": {"chan-3": agent.CallUp}}, nil)
	assert.Equal(t, agent.StateOnCall, waitChange(t, f).Session.Effective())
	f.svc.ObserveCallEnded("1001", "chan-3")
	assert.Equal(t, agent.StateReady, waitChange(t, f).Session.Effective(), "chan-2 is gone")
}

func TestAgentForLocalChannel(t *testing.T) {
	dir, err := agent.ParseDirectory("d.yaml", []byte("agents:\n  - {id: \"7\", name: L, interface: Local/7@agent-phones/n}\n"))
	require.NoError(t, err)
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: agenttest.NewQueues(), DeviceStates: agenttest.NewDeviceStates(), Store: agenttest.NewStore()})
	require.NoError(t, err)

	for _, name := range []string{"Local/7@agent-phones-00000005;1", "Local/7@agent-phones-00000005;2"} {
		a, ok := svc.AgentForChannel(name)
		require.True(t, ok, name)
		assert.Equal(t, "7", a.ID)
	}
	_, ok := svc.AgentForChannel("Local/70@agent-phones-00000006;1")
	assert.False(t, ok)
}

func TestOfflineEndpointLogsOutAfterGrace(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 50*time.Millisecond)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	f.svc.ObserveEndpoint("PJSIP/1001", false)

	c := waitChange(t, f)
	assert.Equal(t, agent.EventAvailabilityChanged, c.Type)
	assert.Equal(t, agent.StateUnavailable, c.Session.Effective())
	c = waitChange(t, f)
	assert.Equal(t, agent.EventLoggedOut, c.Type)
	assert.Equal(t, agent.SourceTimer, c.Source)
}

func TestEndpointBackCancelsLogout(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 200*time.Millisecond)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	f.svc.ObserveEndpoint("PJSIP/1001", false)
	waitChange(t, f)
	f.svc.ObserveEndpoint("PJSIP/1001", true)
	c := waitChange(t, f)
	assert.Equal(t, agent.StateReady, c.Session.Effective())

	time.Sleep(300 * time.Millisecond)
	assert.Empty(t, f.store.Changes(), "no logout after the endpoint came back")
}

func TestRestoreStopsWhenMemberKeepsChanging(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	// Another system removes the member each time agentd restores it.
	for range 5 {
		f.queues.RemoveExternal("support", "PJSIP/1001")
		f.svc.ObserveMember(agent.Member{Queue: "support", Interface: "PJSIP/1001"}, false)
		settle(f)
	}

	var adds int
	for _, c := range f.queues.Calls() {
		if strings.HasPrefix(c, "QueueAdd support") {
			adds++
		}
	}
	assert.Equal(t, 3, adds, "restores stop after three within a minute")
}

// TestCloseWhileEventsArrive: Close returns while events keep arriving
// for many agents, and nothing is handled once it has returned. Under
// -race it also exercises the start of handlers alongside Close's wait.
func TestCloseWhileEventsArrive(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.svc.ObserveCall(fmt.Sprintf("agent-%d", i), "chan-1", agent.CallRinging)
		}
	}()
	time.Sleep(10 * time.Millisecond)
	f.svc.Close()
	close(stop)
	<-done

	f.svc.ObserveCall("1001", "chan-after", agent.CallUp)
	assert.Empty(t, settle(f), "no event is handled after Close")
}

func TestLoginWithPhoneOffline(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	f.svc.ObserveEndpoint("PJSIP/1001", false)
	assert.Empty(t, settle(f), "a logged-out agent's endpoint changes no session")

	res, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)

	require.NoError(t, err)
	assert.Equal(t, agent.StateReady, res.Status.Session.State)
	assert.True(t, res.Status.Session.Unavailable)
	assert.Equal(t, agent.StateUnavailable, res.Status.Session.Effective())
	assert.Equal(t, "UNAVAILABLE", f.devices.State("Stasis:agent-1001"))

	f.reset()
	f.svc.ObserveEndpoint("PJSIP/1001", true)
	c := waitChange(t, f)
	assert.Equal(t, agent.StateReady, c.Session.Effective())
	assert.Equal(t, "NOT_INUSE", f.devices.State("Stasis:agent-1001"))
}

func TestLoginWithPhoneOfflineLogsOutAfterGrace(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 50*time.Millisecond)
	f.svc.ObserveEndpoint("PJSIP/1001", false)
	settle(f)

	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		st, err := f.svc.Status("1001")
		return err == nil && st.Session.State == agent.StateOffline
	}, 5*time.Second, 5*time.Millisecond, "the grace period starts at the login")
}

func TestLoginDuringCall(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	f.svc.ObserveCall("1001", "chan-1", agent.CallUp)
	assert.Empty(t, settle(f))

	res, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)

	require.NoError(t, err)
	assert.Equal(t, agent.StateOnCall, res.Status.Session.Effective())
	assert.Equal(t, "INUSE", f.devices.State("Stasis:agent-1001"))
}

// TestLateChannelEventsIgnored: the channel list read after an ARI connect
// can be newer than events still on their way. A state behind the known
// one changes nothing.
func TestLateChannelEventsIgnored(t *testing.T) {
	f := newObserveFixture(t, agent.MemberRestore, 0)
	_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
	require.NoError(t, err)
	f.reset()

	f.svc.SyncCalls(map[string]map[string]agent.CallState{"1001": {"chan-1": agent.CallRinging}}, nil)
	assert.Equal(t, agent.StateRinging, waitChange(t, f).Session.Effective())

	// ChannelCreated (Down), then ChannelStateChange (Ringing), both sent
	// before the list was read.
	f.svc.ObserveCall("1001", "chan-1", agent.CallNone)
	f.svc.ObserveCall("1001", "chan-1", agent.CallRinging)
	f.svc.ObserveCall("1001", "chan-1", agent.CallUp)
	c := waitChange(t, f)
	assert.Equal(t, agent.StateRinging, c.Previous.Effective(), "no READY in between")
	assert.Equal(t, agent.StateOnCall, c.Session.Effective())

	f.svc.ObserveCall("1001", "chan-1", agent.CallRinging)
	f.svc.ObserveCallEnded("1001", "chan-1")
	c = waitChange(t, f)
	assert.Equal(t, agent.StateOnCall, c.Previous.Effective(), "an up channel does not ring again")
	assert.Equal(t, agent.StateReady, c.Session.Effective())
}
