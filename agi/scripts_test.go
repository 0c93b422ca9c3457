package agi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/contactcenter/agentd/agent"
)

// agent.Service is the production Agents.
var _ Agents = (*agent.Service)(nil)

func stateOf(state, pauseID, pauseName, pauseType, since, iface string) map[string]string {
	return map[string]string{
		VarState: state, VarPauseID: pauseID, VarPauseName: pauseName, VarPauseType: pauseType,
		VarStateSince: since, VarInterface: iface,
	}
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var (
	resultOK = map[string]string{VarResult: ResultOK, VarError: ""}
	sinceStr = fmt.Sprint(since.Unix())
)

func resultError(code string) map[string]string {
	return map[string]string{VarResult: ResultError, VarError: code}
}

func TestAgentState(t *testing.T) {
	agents := newFakeAgents(readyAg, pausedAg, offline)
	addr := startServer(t, newTestServer(t, agents, nil))

	tests := []struct {
		name   string
		script string
		args   []string
		want   map[string]string
	}{
		{"ready agent", ScriptAgentState, []string{"1001"}, merge(stateOf("READY", "", "", "", sinceStr, "PJSIP/1001"), resultOK)},
		{"paused agent", ScriptAgentState, []string{"1002"}, merge(stateOf("PAUSED", "5", `Lunch "long" \ break`, "recreational", sinceStr, "PJSIP/1002"), resultOK)},
		{"offline agent never logged in", ScriptAgentState, []string{"1003"}, merge(stateOf("OFFLINE", "", "", "", "", "PJSIP/1003"), resultOK)},
		{"unknown agent", ScriptAgentState, []string{"9999"}, merge(stateOf(StateUnknown, "", "", "", "", ""), resultError(agent.CodeUnknownAgent))},
		{"agent in query string", ScriptAgentState + "?agent=1002", nil, merge(stateOf("PAUSED", "5", `Lunch "long" \ break`, "recreational", sinceStr, "PJSIP/1002"), resultOK)},
		{"missing agent", ScriptAgentState, nil, merge(stateOf(StateUnknown, "", "", "", "", ""), resultError(ErrorCodeInvalidRequest))},
		{"empty agent argument", ScriptAgentState, []string{""}, merge(stateOf(StateUnknown, "", "", "", "", ""), resultError(ErrorCodeInvalidRequest))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, runScript(t, addr, tt.script, tt.args...))
		})
	}
	assert.Empty(t, agents.recorded(), "agent_state must not run a use case")
}

func TestAgentStateSanitizesLineBreaks(t *testing.T) {
	odd := pausedAg
	odd.Pause = &agent.Pause{ID: "5", Name: "Lunch\r\nbreak\x00", Type: agent.PauseProductive}
	addr := startServer(t, newTestServer(t, newFakeAgents(odd), nil))

	vars := runScript(t, addr, ScriptAgentState, "1002")

	assert.Equal(t, "Lunch  break ", vars[VarPauseName])
	assert.Equal(t, "PAUSED", vars[VarState])
}

func TestAgentStateSessionInterface(t *testing.T) {
	moved := readyAg
	moved.Agent.Interface = "PJSIP/2001" // directory changed after login
	addr := startServer(t, newTestServer(t, newFakeAgents(moved), nil))

	vars := runScript(t, addr, ScriptAgentState, "1001")

	assert.Equal(t, "PJSIP/1001", vars[VarInterface], "the member interface of the session wins")
}

func TestAgentUseCases(t *testing.T) {
	pausedState := merge(stateOf("PAUSED", "5", `Lunch "long" \ break`, "recreational", sinceStr, "PJSIP/1002"), resultOK)
	tests := []struct {
		name     string
		script   string
		args     []string
		wantCall *agentCall
		want     map[string]string
	}{
		{"login", ScriptAgentLogin, []string{"1001"}, &agentCall{"login", "1001", "", agent.SourceAGI}, merge(stateOf("READY", "", "", "", sinceStr, "PJSIP/1001"), resultOK)},
		{"logout", ScriptAgentLogout, []string{"1003"}, &agentCall{"logout", "1003", "", agent.SourceAGI}, merge(stateOf("OFFLINE", "", "", "", "", "PJSIP/1003"), resultOK)},
		{"pause", ScriptAgentPause, []string{"1002", "5"}, &agentCall{"pause", "1002", "5", agent.SourceAGI}, pausedState},
		{"pause from query", ScriptAgentPause + "?agent=1002&pause=5", nil, &agentCall{"pause", "1002", "5", agent.SourceAGI}, pausedState},
		{"unpause", ScriptAgentUnpause, []string{"1001", "5"}, &agentCall{"unpause", "1001", "5", agent.SourceAGI}, merge(stateOf("READY", "", "", "", sinceStr, "PJSIP/1001"), resultOK)},
		{"login without agent", ScriptAgentLogin, nil, nil, resultError(ErrorCodeInvalidRequest)},
		{"pause without pause id", ScriptAgentPause, []string{"1002"}, nil, resultError(ErrorCodeInvalidRequest)},
		{"unpause without pause id", ScriptAgentUnpause, []string{"1002"}, nil, resultError(ErrorCodeInvalidRequest)},
		{"logout of unknown agent", ScriptAgentLogout, []string{"9999"}, &agentCall{"logout", "9999", "", agent.SourceAGI}, resultError(agent.CodeUnknownAgent)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := newFakeAgents(readyAg, pausedAg, offline)
			addr := startServer(t, newTestServer(t, agents, nil))

			assert.Equal(t, tt.want, runScript(t, addr, tt.script, tt.args...))

			if tt.wantCall == nil {
				assert.Empty(t, agents.recorded())
			} else {
				assert.Equal(t, []agentCall{*tt.wantCall}, agents.recorded())
			}
		})
	}
}

func TestAgentUseCaseErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"not logged in", fmt.Errorf("pause agent %q: %w", "1001", agent.ErrNotLoggedIn), agent.CodeNotLoggedIn},
		{"unknown pause", fmt.Errorf("%w: %q", agent.ErrUnknownPause, "77"), agent.CodeUnknownPause},
		{"pause mismatch", agent.ErrPauseMismatch, agent.CodePauseMismatch},
		{"asterisk rejected", &agent.AsteriskError{Action: "QueuePause", Message: "Interface not found"}, agent.CodeAsteriskError},
		{"asterisk unavailable", agent.ErrAsteriskUnavailable, agent.CodeAsteriskUnavailable},
		{"store unavailable", agent.ErrStoreUnavailable, agent.CodeStoreUnavailable},
		{"deadline", context.DeadlineExceeded, agent.CodeTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := newFakeAgents(readyAg)
			agents.err = tt.err
			addr := startServer(t, newTestServer(t, agents, nil))

			vars := runScript(t, addr, ScriptAgentPause, "1001", "77")

			assert.Equal(t, resultError(tt.code), vars, "no AGENT_STATE variables after a failure")
		})
	}
}

func TestAgentUseCaseTimeout(t *testing.T) {
	agents := newFakeAgents(readyAg)
	agents.block = make(chan struct{}) // never closed: the use case waits for its deadline
	srv := newTestServer(t, agents, func(c *Config) { c.CommandTimeout = 100 * time.Millisecond })
	addr := startServer(t, srv)

	vars := runScript(t, addr, ScriptAgentLogin, "1001")

	assert.Equal(t, resultError(agent.CodeTimeout), vars)
}

func TestUnknownScript(t *testing.T) {
	srv := newTestServer(t, newFakeAgents(readyAg), nil)
	addr := startServer(t, srv)

	assert.Equal(t, resultError(ErrorCodeUnknownScript), runScript(t, addr, "agent_teleport", "1001"))
	assert.Equal(t, resultError(ErrorCodeUnknownScript), runScript(t, addr, ""), "AGI URL without a path")

	assert.Equal(t, uint64(2), srv.Stats().UnknownScripts)
}

func TestSanitizeValue(t *testing.T) {
	assert.Equal(t, "plain value", sanitizeValue("plain value"))
	assert.Equal(t, "a  b c", sanitizeValue("a\r\nb\x00c"))
	assert.Equal(t, "tab\tkept", sanitizeValue("tab\tkept"))
}
