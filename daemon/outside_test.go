package daemon_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/events"
	"github.com/contactcenter/agentd/internal/testbench"
)

// The tests below change Asterisk outside agentd (CLI, calls) and check
// that agentd follows or repairs it. They only touch their own agents, so
// they run with the other tests.

func TestStartReconcilesAsterisk(t *testing.T) {
	bench := testbench.Require(t)
	ready := newAgent("sales", "support")
	paused := newAgent("sales", "billing")
	agents := []e2eAgent{ready, paused}
	t.Cleanup(func() { removeMembers(t, bench, agents...) })
	dataDir := t.TempDir()
	first := startFaultDaemon(t, bench, agents, faultOptions{dataDir: dataDir})
	first.mustPost(t, ready, "/api/v1/asterisk_login/", "")
	first.mustPost(t, paused, "/api/v1/asterisk_login/", "")
	first.mustPost(t, paused, "/api/v1/asterisk_pause/", "7")
	first.stop(t)

	// Changes made while agentd is stopped, so it receives no event of them.
	bench.CLI(t, "queue remove member "+ready.Interface+" from support")
	bench.CLI(t, "queue unpause member "+paused.Interface)
	log := bench.QueueLog(t)
	second := startFaultDaemon(t, bench, agents, faultOptions{dataDir: dataDir, natsPort: first.natsPort})

	for _, a := range agents {
		took := eventually(t, 10*time.Second, "Asterisk matches the stored session of "+a.ID, func() string {
			return asteriskMismatch(t, bench, a, second.session(t, a))
		})
		t.Logf("agent %s reconciled %s after agentd was ready", a.ID, took)
	}
	assert.Equal(t, agent.StateReady, second.session(t, ready).State)
	assert.Equal(t, agent.StatePaused, second.session(t, paused).State)
	assert.Equal(t, "7", second.session(t, paused).PauseID)

	assert.Len(t, second.logs.find("re-added missing member", map[string]string{"agent_id": ready.ID, "queue": "support"}), 1)
	assert.Len(t, second.logs.find("pause state differs", map[string]string{"agent_id": paused.ID, "queue": "sales"}), 1)
	assert.Len(t, second.logs.find("pause state differs", map[string]string{"agent_id": paused.ID, "queue": "billing"}), 1)
	assert.Empty(t, second.logs.find("pause state differs", map[string]string{"agent_id": ready.ID}))

	js := openJetStream(t, second.natsURL)
	for _, a := range agents {
		eventually(t, 5*time.Second, "one reconciled event of "+a.ID, func() string {
			if n := len(filterEvents(streamEvents(t, js, a.ID), agent.EventReconciled, agent.SourceReconcile)); n != 1 {
				return fmt.Sprintf("%d reconciled events", n)
			}
			return ""
		})
	}
	assert.Contains(t, queueLogEvents(t, log, ready), "support|ADDMEMBER|")
	assert.Contains(t, queueLogEvents(t, log, paused), "sales|PAUSE|7")
	assert.Contains(t, queueLogEvents(t, log, paused), "billing|PAUSE|7")
}

func TestOutsidePauseIsAdopted(t *testing.T) {
	bench := testbench.Require(t)
	a := newAgent("sales", "support")
	f := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: t.TempDir()})
	t.Cleanup(func() { f.post(t, a, "/api/v1/asterisk_logout/", nil) })
	js := openJetStream(t, f.natsURL)
	device := "Stasis:agent-" + a.ID
	f.mustPost(t, a, "/api/v1/asterisk_login/", "")

	// A pause on one queue becomes the agent's pause on all its queues.
	bench.CLI(t, "queue pause member "+a.Interface+" queue sales reason Break")
	waitSession(t, f, a, agent.StatePaused, "Break")
	for _, q := range a.Queues {
		m := member(t, bench, q, a)
		require.NotNil(t, m, q)
		assert.True(t, m.Paused, q)
		assert.Equal(t, "Break", m.PausedReason, q)
	}
	assert.Equal(t, "ONHOLD", bench.DeviceState(t, device))

	bench.CLI(t, "queue unpause member "+a.Interface)
	waitSession(t, f, a, agent.StateReady, "")
	for _, q := range a.Queues {
		assert.False(t, member(t, bench, q, a).Paused, q)
	}
	assert.Equal(t, "NOT_INUSE", bench.DeviceState(t, device))

	// A second outside pause right after is adopted as well: the echoes of
	// the first adoption are all consumed, none is left to swallow it.
	bench.CLI(t, "queue pause member "+a.Interface+" queue support reason Coffee")
	waitSession(t, f, a, agent.StatePaused, "Coffee")
	assert.Equal(t, "Coffee", member(t, bench, "sales", a).PausedReason)
	bench.CLI(t, "queue unpause member "+a.Interface+" queue support")
	waitSession(t, f, a, agent.StateReady, "")
	assert.False(t, member(t, bench, "sales", a).Paused)

	// agentd's own pauses: Asterisk echoes each QueuePause once per queue,
	// and no echo may count as an outside change.
	f.mustPost(t, a, "/api/v1/asterisk_pause/", "7")
	f.mustPost(t, a, "/api/v1/asterisk_unpause/", "7")
	f.mustPost(t, a, "/api/v1/asterisk_pause/", "8")
	f.mustPost(t, a, "/api/v1/asterisk_unpause/", "8")
	// The member events of one agent are handled in order, so once this
	// pause is adopted the echoes sent before it have been handled.
	bench.CLI(t, "queue pause member "+a.Interface+" queue sales reason Barrier")
	waitSession(t, f, a, agent.StatePaused, "Barrier")

	got := eventSummaries(streamEvents(t, js, a.ID))
	assert.Equal(t, []string{
		"logged_in api READY",
		"paused asterisk PAUSED Break",
		"unpaused asterisk READY",
		"paused asterisk PAUSED Coffee",
		"unpaused asterisk READY",
		"paused api PAUSED 7",
		"unpaused api READY",
		"paused api PAUSED 8",
		"unpaused api READY",
		"paused asterisk PAUSED Barrier",
	}, got)
}

func TestCallStateFollowsQueueCall(t *testing.T) {
	bench := testbench.Require(t)
	requireRingingPhones(t, bench)
	const queue = "e2e-calls"
	a := newAgent(queue)
	f := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: t.TempDir()})
	t.Cleanup(func() { f.post(t, a, "/api/v1/asterisk_logout/", nil) })
	js := openJetStream(t, f.natsURL)
	device := "Stasis:agent-" + a.ID
	f.mustPost(t, a, "/api/v1/asterisk_login/", "")

	caller := placeQueueCall(t, bench, queue)
	t.Cleanup(func() { bench.Hangup(t, caller) })

	// The agent phone rings for 1 s before Answer() (agent-phones in
	// extensions.conf). agentd sets the device before it stores the
	// session, so both are checked together.
	callStateIs := func(want agent.State, deviceState string) func() string {
		return func() string {
			got, dev := f.session(t, a).Effective(), bench.DeviceState(t, device)
			if got != want || dev != deviceState {
				return "session " + string(got) + ", device " + dev
			}
			return ""
		}
	}
	eventually(t, 10*time.Second, "agent ringing", callStateIs(agent.StateRinging, "RINGING"))
	eventually(t, 5*time.Second, "agent on call", callStateIs(agent.StateOnCall, "INUSE"))
	bench.Hangup(t, caller)
	eventually(t, 5*time.Second, "agent ready after the call", callStateIs(agent.StateReady, "NOT_INUSE"))

	var states []string
	for _, ev := range filterEvents(streamEvents(t, js, a.ID), agent.EventCallStateChanged, agent.SourceAsterisk) {
		states = append(states, string(ev.EffectiveState)+"/"+string(ev.CallState))
	}
	assert.Equal(t, []string{"RINGING/RINGING", "ONCALL/ONCALL", "READY/"}, states)
}

// requireRingingPhones skips the test, or fails it under
// AGENTD_REQUIRE_ASTERISK=1, when the agent-phones context of the running
// sandbox has no Ringing(), as before extensions.conf added it. The agent
// would then go from READY to ONCALL without RINGING.
func requireRingingPhones(t *testing.T, bench *testbench.Bench) {
	t.Helper()
	if strings.Contains(bench.CLI(t, "dialplan show agent-phones"), "Ringing()") {
		return
	}
	msg := "the sandbox's agent-phones context does not ring (extensions.conf changed since it started); restart it with scripts/asterisk-sandbox.sh restart"
	if os.Getenv(testbench.EnvRequireAsterisk) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// waitSession waits until the agent's session has state and pause id.
func waitSession(t *testing.T, f *faultDaemon, a e2eAgent, state agent.State, pauseID string) {
	t.Helper()
	eventually(t, 5*time.Second, "agent "+a.ID+" "+string(state)+" "+pauseID, func() string {
		s := f.session(t, a)
		if s.State != state || s.PauseID != pauseID {
			return string(s.State) + " " + s.PauseID
		}
		return ""
	})
}

// eventSummaries returns "type source state [pause id]" of each event.
func eventSummaries(evs []events.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		s := string(ev.Type) + " " + string(ev.Source) + " " + string(ev.State)
		if ev.Pause != nil {
			s += " " + ev.Pause.ID
		}
		out = append(out, s)
	}
	return out
}

// removeMembers removes the agents from their queues, for cleanups that
// run after agentd stopped.
func removeMembers(t *testing.T, bench *testbench.Bench, agents ...e2eAgent) {
	for _, a := range agents {
		for _, q := range a.Queues {
			bench.RemoveMember(t, q, a.Interface)
		}
	}
}
