package agi

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
	"github.com/contactcenter/agentd/ami"
	"github.com/contactcenter/agentd/ari"
	"github.com/contactcenter/agentd/internal/testbench"
)

// These tests run the FastAGI server against the sandbox Asterisk 22: the
// dialplan context agentd-agi of test/asterisk/etc/extensions.conf calls
// AGI(agi://${AGENTD_AGI_ADDR}/<script>,${AGENT}…) and reports the channel
// variables in a UserEvent. The agent.Service behind the server uses the
// real AMI and ARI adapters.

const asteriskWait = 15 * time.Second

// asteriskEnv is a server wired to the sandbox.
type asteriskEnv struct {
	bench  *testbench.Bench
	events *testbench.EventListener
	srv    *Server
	svc    *agent.Service
	store  *agenttest.Store
	addr   string
}

// asteriskDirectory returns a directory with the given agents, each in the
// queues sales and support with a Local interface of its own.
func asteriskDirectory(ids ...string) string {
	var b strings.Builder
	b.WriteString("pauses:\n  - {id: \"5\", name: Lunch break, type: recreational}\nagents:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  - id: %q\n    name: Agent %s\n    interface: %s\n    queues: [{name: sales}, {name: support, penalty: 2}]\n", id, id, localInterface(id))
	}
	return b.String()
}

func localInterface(id string) string {
	return "Local/" + id + "@agent-phones/n"
}

// newAsteriskEnv starts an AMI client, an ARI client, an agent.Service on
// them and a FastAGI server on a loopback port, all stopped when the test
// ends.
func newAsteriskEnv(t *testing.T, ids ...string) *asteriskEnv {
	t.Helper()
	bench := testbench.Require(t)
	log := testLogger(t)

	amiClient := ami.New(ami.Config{Addr: bench.AMIAddr, Username: bench.AMIUser, Secret: bench.AMISecret, Logger: log})
	runDone := make(chan error, 1)
	go func() { runDone <- amiClient.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, amiClient.Close())
		require.NoError(t, <-runDone)
	})
	require.Eventually(t, amiClient.Connected, asteriskWait, 20*time.Millisecond, "AMI login")

	ariClient, err := ari.NewClient(ari.Config{URL: bench.ARIURL, Username: bench.ARIUser, Password: bench.ARIPassword, Logger: log})
	require.NoError(t, err)
	t.Cleanup(ariClient.Close)

	store := agenttest.NewStore()
	svc := newService(t, asteriskDirectory(ids...), ami.NewQueues(amiClient), ari.NewDeviceStates(ariClient), store, log)
	t.Cleanup(func() {
		for _, id := range ids {
			_, err := svc.Logout(context.Background(), id, agent.SourceAPI)
			assert.NoError(t, err, "logout of agent %s at cleanup", id)
			bench.RemoveMember(t, "sales", localInterface(id))
			bench.RemoveMember(t, "support", localInterface(id))
		}
	})

	srv := newTestServer(t, svc, nil)
	env := &asteriskEnv{bench: bench, events: bench.ListenEvents(t), srv: srv, svc: svc, store: store}
	env.addr = startServer(t, srv)
	return env
}

// runExtension originates a call into extension exten of agentd-agi with
// AGENT=agentID and returns the UserEvent the dialplan sends after AGI().
// vars add channel variables or replace AGENT.
func (e *asteriskEnv) runExtension(t *testing.T, exten, agentID string, vars map[string]string) map[string]string {
	t.Helper()
	variables := map[string]string{"AGENT": agentID, "AGENTD_AGI_ADDR": e.addr}
	for k, v := range vars {
		variables[k] = v
	}
	e.bench.Originate(t, testbench.OriginateRequest{
		Channel:   "Local/" + testbench.UniqueName("agi") + "@agent-phones/n",
		Context:   "agentd-agi",
		Exten:     exten,
		Variables: variables,
		Async:     true,
	})
	userEvent := "AgentResult"
	if exten == "state" {
		userEvent = "AgentState"
	}
	ctx, cancel := context.WithTimeout(context.Background(), asteriskWait)
	defer cancel()
	event := e.events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "UserEvent" && ev["UserEvent"] == userEvent && ev["AGENT"] == agentID
	})
	t.Logf("%s %s: %s", exten, agentID, formatEvent(event, "AGISTATUS", "AGENT_STATE", "AGENT_PAUSE_ID", "AGENT_PAUSE_NAME",
		"AGENT_PAUSE_TYPE", "AGENT_STATE_SINCE", "AGENT_INTERFACE", "AGENT_RESULT", "AGENT_ERROR"))
	return event
}

func formatEvent(event map[string]string, keys ...string) string {
	var parts []string
	for _, k := range keys {
		if v, ok := event[k]; ok {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
	}
	return strings.Join(parts, " ")
}

// member returns the member with iface in queue, or false.
func (e *asteriskEnv) member(t *testing.T, queue, iface string) (testbench.QueueMember, bool) {
	for _, m := range e.bench.QueueMembers(t, queue) {
		if m.Interface == iface {
			return m, true
		}
	}
	return testbench.QueueMember{}, false
}

func TestAsteriskAgentState(t *testing.T) {
	ready, paused, offline := testbench.UniqueName("agi"), testbench.UniqueName("agi"), testbench.UniqueName("agi")
	env := newAsteriskEnv(t, ready, paused, offline)
	ctx := context.Background()
	_, err := env.svc.Login(ctx, ready, agent.SourceAPI)
	require.NoError(t, err)
	_, err = env.svc.Login(ctx, paused, agent.SourceAPI)
	require.NoError(t, err)
	res, err := env.svc.Pause(ctx, paused, "5", agent.SourceAPI)
	require.NoError(t, err)
	pausedSince := strconv.FormatInt(res.Status.Session.Since.Unix(), 10)

	t.Run("ready", func(t *testing.T) {
		ev := env.runExtension(t, "state", ready, nil)
		assert.Equal(t, "SUCCESS", ev["AGISTATUS"])
		assert.Equal(t, "READY", ev["AGENT_STATE"])
		assert.Empty(t, ev["AGENT_PAUSE_ID"])
		assert.Equal(t, localInterface(ready), ev["AGENT_INTERFACE"])
		assert.NotEmpty(t, ev["AGENT_STATE_SINCE"])
	})
	t.Run("paused", func(t *testing.T) {
		ev := env.runExtension(t, "state", paused, nil)
		assert.Equal(t, "SUCCESS", ev["AGISTATUS"])
		assert.Equal(t, "PAUSED", ev["AGENT_STATE"])
		assert.Equal(t, "5", ev["AGENT_PAUSE_ID"])
		assert.Equal(t, "Lunch break", ev["AGENT_PAUSE_NAME"])
		assert.Equal(t, "recreational", ev["AGENT_PAUSE_TYPE"])
		assert.Equal(t, pausedSince, ev["AGENT_STATE_SINCE"])
		assert.Equal(t, localInterface(paused), ev["AGENT_INTERFACE"])
	})
	t.Run("offline", func(t *testing.T) {
		ev := env.runExtension(t, "state", offline, nil)
		assert.Equal(t, "SUCCESS", ev["AGISTATUS"])
		assert.Equal(t, "OFFLINE", ev["AGENT_STATE"])
		assert.Empty(t, ev["AGENT_STATE_SINCE"])
	})
	t.Run("unknown", func(t *testing.T) {
		ev := env.runExtension(t, "state", "nobody-"+testbench.UniqueName("x"), nil)
		assert.Equal(t, "SUCCESS", ev["AGISTATUS"], "the hook never fails the call")
		assert.Equal(t, StateUnknown, ev["AGENT_STATE"])
		assert.Empty(t, ev["AGENT_INTERFACE"])
	})
}

func TestAsteriskFeatureCodes(t *testing.T) {
	id := testbench.UniqueName("agi")
	iface := localInterface(id)
	env := newAsteriskEnv(t, id)

	ev := env.runExtension(t, "login", id, nil)
	require.Equal(t, "SUCCESS", ev["AGISTATUS"])
	require.Equal(t, ResultOK, ev["AGENT_RESULT"], "AGENT_ERROR=%s", ev["AGENT_ERROR"])
	for _, queue := range []string{"sales", "support"} {
		m, ok := env.member(t, queue, iface)
		require.True(t, ok, "%s is a member of %s after the login extension", iface, queue)
		assert.False(t, m.Paused)
	}
	assert.Equal(t, 2, mustMember(t, env, "support", iface).Penalty)
	show := env.bench.CLI(t, "queue show sales")
	t.Logf("queue show sales after login:\n%s", show)
	assert.Contains(t, show, iface)

	ev = env.runExtension(t, "pause", id, map[string]string{"PAUSE_ID": "5"})
	require.Equal(t, ResultOK, ev["AGENT_RESULT"], "AGENT_ERROR=%s", ev["AGENT_ERROR"])
	for _, queue := range []string{"sales", "support"} {
		m := mustMember(t, env, queue, iface)
		assert.True(t, m.Paused, "paused in %s", queue)
		assert.Equal(t, "5", m.PausedReason)
	}
	assert.Equal(t, "ONHOLD", env.bench.DeviceState(t, "Stasis:agent-"+id))
	show = env.bench.CLI(t, "queue show sales")
	t.Logf("queue show sales after pause:\n%s", show)
	assert.Contains(t, show, "paused:5")

	ev = env.runExtension(t, "state", id, nil)
	assert.Equal(t, "PAUSED", ev["AGENT_STATE"])
	assert.Equal(t, "Lunch break", ev["AGENT_PAUSE_NAME"])

	// The sandbox's unpause extension passes no pause id.
	ev = env.runExtension(t, "unpause", id, nil)
	assert.Equal(t, ResultError, ev["AGENT_RESULT"])
	assert.Equal(t, ErrorCodeInvalidRequest, ev["AGENT_ERROR"])
	assert.True(t, mustMember(t, env, "sales", iface).Paused, "a refused unpause leaves the pause")

	ev = env.runExtension(t, "logout", id, nil)
	require.Equal(t, ResultOK, ev["AGENT_RESULT"], "AGENT_ERROR=%s", ev["AGENT_ERROR"])
	_, ok := env.member(t, "sales", iface)
	assert.False(t, ok, "logout removed the member")

	var sources []string
	for _, c := range env.store.Changes() {
		sources = append(sources, string(c.Type)+"/"+string(c.Source))
	}
	assert.Equal(t, []string{"logged_in/agi", "paused/agi", "logged_out/agi"}, sources)
}

func mustMember(t *testing.T, env *asteriskEnv, queue, iface string) testbench.QueueMember {
	t.Helper()
	m, ok := env.member(t, queue, iface)
	require.True(t, ok, "%s is a member of %s", iface, queue)
	return m
}

func TestAsteriskUnpauseWithPauseID(t *testing.T) {
	id := testbench.UniqueName("agi")
	iface := localInterface(id)
	env := newAsteriskEnv(t, id)
	ctx := context.Background()
	_, err := env.svc.Login(ctx, id, agent.SourceAPI)
	require.NoError(t, err)
	_, err = env.svc.Pause(ctx, id, "5", agent.SourceAPI)
	require.NoError(t, err)

	// The sandbox's unpause extension runs agent_unpause,${AGENT},${PAUSE_ID}.
	ev := env.runExtension(t, "unpause", id, map[string]string{"PAUSE_ID": "5"})

	assert.Equal(t, ResultOK, ev["AGENT_RESULT"], "AGENT_ERROR=%s", ev["AGENT_ERROR"])
	assert.False(t, mustMember(t, env, "sales", iface).Paused)
	assert.False(t, mustMember(t, env, "support", iface).Paused)
	assert.Equal(t, "NOT_INUSE", env.bench.DeviceState(t, "Stasis:agent-"+id))
	st, err := env.svc.Status(id)
	require.NoError(t, err)
	assert.Equal(t, agent.StateReady, st.Session.State)
}

func TestAsteriskHangupDuringSession(t *testing.T) {
	bench := testbench.Require(t)
	events := bench.ListenEvents(t)
	agents := newFakeAgents(readyAg)
	agents.block = make(chan struct{})
	agents.entered = make(chan struct{}, 1)
	srv := newTestServer(t, agents, func(c *Config) { c.CommandTimeout = asteriskWait })
	addr := startServer(t, srv)
	channel := testbench.UniqueName("agi")

	bench.Originate(t, testbench.OriginateRequest{
		Channel:   "Local/" + channel + "@agent-phones/n",
		Context:   "agentd-agi",
		Exten:     "login",
		Variables: map[string]string{"AGENT": readyAg.Agent.ID, "AGENTD_AGI_ADDR": addr},
		Async:     true,
	})
	select {
	case <-agents.entered:
	case <-time.After(asteriskWait):
		t.Fatal("the login use case did not start")
	}
	bench.Hangup(t, `/^Local\/`+channel+`@agent-phones-/`)
	ctx, cancel := context.WithTimeout(context.Background(), asteriskWait)
	defer cancel()
	// The channel running AGI() gets a hangup request now; its Hangup
	// event follows only once the AGI session has ended.
	events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return (ev["Event"] == "HangupRequest" || ev["Event"] == "SoftHangupRequest") && isAGIChannel(ev, channel)
	})
	// res_agi writes HANGUP once its loop reads the hangup from the channel.
	time.Sleep(200 * time.Millisecond)
	close(agents.block)

	require.Eventually(t, func() bool { return srv.Stats().Active == 0 }, asteriskWait, 20*time.Millisecond, "no session left")
	st := srv.Stats()
	assert.Equal(t, uint64(1), st.Hangups, "the session saw Asterisk's HANGUP")
	assert.Equal(t, uint64(0), st.Failed)
	assert.Len(t, agents.recorded(), 1, "the login requested before the hangup still ran")
	events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "Hangup" && isAGIChannel(ev, channel)
	})
}

// isAGIChannel reports whether ev is about the ;1 half of the Local
// channel Local/<channel>@agent-phones, which runs the agentd-agi dialplan.
func isAGIChannel(ev map[string]string, channel string) bool {
	return strings.HasPrefix(ev["Channel"], "Local/"+channel+"@agent-phones-") && strings.HasSuffix(ev["Channel"], ";1")
}

func TestAsteriskServerStopped(t *testing.T) {
	bench := testbench.Require(t)
	events := bench.ListenEvents(t)
	// A port that was just free, with nothing listening on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	id := testbench.UniqueName("agi")

	bench.Originate(t, testbench.OriginateRequest{
		Channel:   "Local/" + testbench.UniqueName("agi") + "@agent-phones/n",
		Context:   "agentd-agi",
		Exten:     "state",
		Variables: map[string]string{"AGENT": id, "AGENTD_AGI_ADDR": addr},
		Async:     true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), asteriskWait)
	defer cancel()
	ev := events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "UserEvent" && ev["UserEvent"] == "AgentState" && ev["AGENT"] == id
	})

	t.Logf("state with no listener on %s: %s", addr, formatEvent(ev, "AGISTATUS", "AGENT_STATE"))
	assert.Equal(t, "FAILURE", ev["AGISTATUS"])
	assert.Empty(t, ev["AGENT_STATE"], "the dialplan continued after AGI() without variables")
}

func TestAsteriskSessionCapFailure(t *testing.T) {
	bench := testbench.Require(t)
	events := bench.ListenEvents(t)
	agents := newFakeAgents(readyAg)
	agents.block = make(chan struct{})
	agents.entered = make(chan struct{}, 1)
	srv := newTestServer(t, agents, func(c *Config) {
		c.MaxSessions = 1
		c.CommandTimeout = asteriskWait
	})
	addr := startServer(t, srv)
	originate := func(exten string) {
		bench.Originate(t, testbench.OriginateRequest{
			Channel:   "Local/" + testbench.UniqueName("agi") + "@agent-phones/n",
			Context:   "agentd-agi",
			Exten:     exten,
			Variables: map[string]string{"AGENT": readyAg.Agent.ID, "AGENTD_AGI_ADDR": addr},
			Async:     true,
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), asteriskWait)
	defer cancel()

	originate("login")
	select {
	case <-agents.entered:
	case <-ctx.Done():
		t.Fatal("the login use case did not start")
	}
	originate("state")
	state := events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "UserEvent" && ev["UserEvent"] == "AgentState" && ev["AGENT"] == readyAg.Agent.ID
	})
	close(agents.block)
	login := events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "UserEvent" && ev["UserEvent"] == "AgentResult" && ev["AGENT"] == readyAg.Agent.ID
	})

	t.Logf("state beyond the cap: %s", formatEvent(state, "AGISTATUS", "AGENT_STATE"))
	assert.Equal(t, "FAILURE", state["AGISTATUS"], "the rejected session ends with AGISTATUS=FAILURE")
	assert.Empty(t, state["AGENT_STATE"])
	assert.Equal(t, "SUCCESS", login["AGISTATUS"])
	assert.Equal(t, ResultOK, login["AGENT_RESULT"])
	assert.Equal(t, uint64(1), srv.Stats().RejectedBusy)
}

// TestAsteriskSetVariables checks on Asterisk that SetVariables sets every
// value unchanged, whether it goes by MSet or by SET VARIABLE, and that an
// empty value in MSet clears a value set before.
func TestAsteriskSetVariables(t *testing.T) {
	bench := testbench.Require(t)
	want := map[string]string{
		"AGENTD_T_EMPTY":  "",
		"AGENTD_T_STATE":  "READY",
		"AGENTD_T_IFACE":  "Local/7@agent-phones/n",
		"AGENTD_T_SINCE":  "1796414400",
		"AGENTD_T_SIGNS":  "a_b.c:d/e@f+g-h",
		"AGENTD_T_COMMA":  "Lunch, long",
		"AGENTD_T_QUOTES": `say "hi" \o/`,
		"AGENTD_T_SPACES": "  two  words ",
		"AGENTD_T_ACCENT": "Almuerzo con café",
		"AGENTD_T_EQUALS": "a=b",
		"AGENTD_T_PARENS": "x(y)[z]",
		"AGENTD_T_OPEN":   "x(y",
		"AGENTD_T_TICK":   "it's",
		"AGENTD_T_MARKS":  "#*!?%&~;<>^$={}=¿¡ñ",
		"AGENTD_T_DOLLAR": "${EXTEN}",
		"AGENTD_T_BACK":   `back\slash`,
		"AGENTD_T_TRAIL":  `trailing\`,
		"AGENTD_T_LONG":   strings.Repeat("l", 1000), // GET VARIABLE returns at most 1023 bytes
	}
	type result struct {
		got map[string]string
		err error
	}
	results := make(chan result, 1)
	// The dialplan extension "state" runs agent_state, and an Originate
	// may not run AGI() directly, so the test replaces that script.
	srv := newTestServer(t, newFakeAgents(readyAg), nil)
	srv.handlers[ScriptAgentState] = func(ctx context.Context, s *Session) error {
		res := result{got: map[string]string{}}
		defer func() { results <- res }()
		if res.err = s.SetVariable(ctx, "AGENTD_T_EMPTY", "stale"); res.err != nil {
			return res.err
		}
		// The help of EXEC says it expands ${...} with AGIEXECFULL=yes. The
		// values must arrive as written either way.
		if res.err = s.SetVariable(ctx, "AGIEXECFULL", "yes"); res.err != nil {
			return res.err
		}
		var vars []Variable
		for name, value := range want {
			vars = append(vars, Variable{Name: name, Value: value})
		}
		if res.err = s.SetVariables(ctx, vars); res.err != nil {
			return res.err
		}
		for name := range want {
			value, _, err := s.GetVariable(ctx, name)
			if err != nil {
				res.err = err
				return err
			}
			res.got[name] = value
		}
		return nil
	}
	addr := startServer(t, srv)

	bench.Originate(t, testbench.OriginateRequest{
		Channel:   "Local/" + testbench.UniqueName("agi") + "@agent-phones/n",
		Context:   "agentd-agi",
		Exten:     "state",
		Variables: map[string]string{"AGENT": testbench.UniqueName("agi"), "AGENTD_AGI_ADDR": addr},
		Async:     true,
	})
	select {
	case res := <-results:
		require.NoError(t, res.err)
		assert.Equal(t, want, res.got)
	case <-time.After(asteriskWait):
		t.Fatal("the AGI session did not run")
	}
}
