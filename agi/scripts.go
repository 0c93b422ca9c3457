package agi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/contactcenter/agentd/agent"
)

// Agents is the part of agent.Service that the agent scripts call.
type Agents interface {
	Status(agentID string) (agent.Status, error)
	Login(ctx context.Context, agentID string, src agent.Source) (agent.Result, error)
	Logout(ctx context.Context, agentID string, src agent.Source) (agent.Result, error)
	Pause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error)
	Unpause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error)
}

// Script names registered by NewServer.
const (
	ScriptAgentState   = "agent_state"
	ScriptAgentLogin   = "agent_login"
	ScriptAgentLogout  = "agent_logout"
	ScriptAgentPause   = "agent_pause"
	ScriptAgentUnpause = "agent_unpause"
)

// Query parameters that stand in for the arguments: agent_state?agent=1001
// is agent_state,1001 and agent_pause?agent=1001&pause=5 is
// agent_pause,1001,5.
const (
	ParamAgent = "agent"
	ParamPause = "pause"
)

// Channel variables set by the scripts.
const (
	VarState      = "AGENT_STATE"       // OFFLINE, READY, PAUSED, or UNKNOWN for an unknown agent
	VarPauseID    = "AGENT_PAUSE_ID"    // empty unless paused
	VarPauseName  = "AGENT_PAUSE_NAME"  // empty unless paused
	VarPauseType  = "AGENT_PAUSE_TYPE"  // productive or recreational; empty unless paused
	VarStateSince = "AGENT_STATE_SINCE" // Unix time in seconds; empty for an agent never logged in
	VarInterface  = "AGENT_INTERFACE"   // e.g. PJSIP/1001
	VarResult     = "AGENT_RESULT"      // OK or ERROR
	VarError      = "AGENT_ERROR"       // error code, empty on OK
)

// Values of AGENT_RESULT and AGENT_STATE.
const (
	ResultOK     = "OK"
	ResultError  = "ERROR"
	StateUnknown = "UNKNOWN"
)

// AGENT_ERROR codes of the FastAGI layer. The other codes are those of
// agent.ErrorCode, shared with the HTTP API.
const (
	ErrorCodeInvalidRequest = "invalid_request" // agent id or pause id missing
	ErrorCodeUnknownScript  = "unknown_script"  // no handler for the script name
)

// registerAgentScripts registers the five agent scripts on s.
func registerAgentScripts(s *Server, agents Agents) error {
	timeout := s.cfg.CommandTimeout
	handlers := map[string]Handler{
		ScriptAgentState: stateHandler(agents),
		ScriptAgentLogin: useCase(false, timeout, func(ctx context.Context, agentID, _ string) (agent.Result, error) {
			return agents.Login(ctx, agentID, agent.SourceAGI)
		}),
		ScriptAgentLogout: useCase(false, timeout, func(ctx context.Context, agentID, _ string) (agent.Result, error) {
			return agents.Logout(ctx, agentID, agent.SourceAGI)
		}),
		ScriptAgentPause: useCase(true, timeout, func(ctx context.Context, agentID, pauseID string) (agent.Result, error) {
			return agents.Pause(ctx, agentID, pauseID, agent.SourceAGI)
		}),
		ScriptAgentUnpause: useCase(true, timeout, func(ctx context.Context, agentID, pauseID string) (agent.Result, error) {
			return agents.Unpause(ctx, agentID, pauseID, agent.SourceAGI)
		}),
	}
	for name, h := range handlers {
		if err := s.Handle(name, h); err != nil {
			return err
		}
	}
	return nil
}

// stateHandler returns the handler of agent_state, which reads the state
// from memory. An unknown agent or a missing argument gives
// AGENT_STATE=UNKNOWN rather than an error.
func stateHandler(agents Agents) Handler {
	return func(ctx context.Context, s *Session) error {
		agentID := s.Request().Arg(0, ParamAgent)
		if agentID == "" {
			s.Logger().Warn("agi agent_state called without an agent id")
			return setVariables(ctx, s, append(unknownStateVars(), resultVars(ErrorCodeInvalidRequest)...))
		}

		st, err := agents.Status(agentID)
		if err != nil {
			code := agent.ErrorCode(err)
			s.Logger().Info("agi agent_state failed; setting AGENT_STATE=UNKNOWN", "agent_id", agentID, "code", code, "err", err)
			return setVariables(ctx, s, append(unknownStateVars(), resultVars(code)...))
		}
		return setVariables(ctx, s, append(stateVars(st), resultVars("")...))
	}
}

// useCaseFunc runs one agent use case for the agent and pause ids of a
// request.
type useCaseFunc func(ctx context.Context, agentID, pauseID string) (agent.Result, error)

// useCase returns the handler of an action script. The handler takes the
// agent id from argument 1 and, when needsPause, the pause id from
// argument 2. It runs the use case within timeout and sets AGENT_RESULT,
// AGENT_ERROR and, on success, the AGENT_STATE variables.
func useCase(needsPause bool, timeout time.Duration, run useCaseFunc) Handler {
	return func(ctx context.Context, s *Session) error {
		req := s.Request()
		agentID, pauseID := req.Arg(0, ParamAgent), ""
		if needsPause {
			pauseID = req.Arg(1, ParamPause)
		}
		if agentID == "" || needsPause && pauseID == "" {
			s.Logger().Warn("agi script called without a required argument", "agent_id", agentID, "pause_id", pauseID)
			return setVariables(ctx, s, resultVars(ErrorCodeInvalidRequest))
		}

		callCtx, cancel := context.WithTimeout(ctx, timeout)
		res, err := run(callCtx, agentID, pauseID)
		cancel()
		if err != nil {
			code := agent.ErrorCode(err)
			s.Logger().Warn("agi use case failed", "agent_id", agentID, "pause_id", pauseID, "code", code, "err", err)
			return setVariables(ctx, s, resultVars(code))
		}
		return setVariables(ctx, s, append(resultVars(""), stateVars(res.Status)...))
	}
}

// unknownScript serves a script name without a handler.
func unknownScript(ctx context.Context, s *Session) error {
	s.Logger().Warn("agi script not found", "channel", s.Header().Channel(), "request", s.Header().Get(headerRequest))
	return setVariables(ctx, s, resultVars(ErrorCodeUnknownScript))
}

// resultVars returns AGENT_RESULT and AGENT_ERROR: OK and empty for code
// "", else ERROR and code. AGENT_ERROR is always set so that a value left
// by an earlier AGI on the channel does not linger.
func resultVars(code string) []Variable {
	result := ResultOK
	if code != "" {
		result = ResultError
	}
	return []Variable{{VarResult, result}, {VarError, code}}
}

// stateVars returns the AGENT_STATE variables of st.
func stateVars(st agent.Status) []Variable {
	var pauseID, pauseName, pauseType string
	if st.Pause != nil {
		pauseID, pauseName, pauseType = st.Pause.ID, st.Pause.Name, string(st.Pause.Type)
	}
	var since string
	if !st.Session.Since.IsZero() {
		since = strconv.FormatInt(st.Session.Since.Unix(), 10)
	}
	iface := st.Session.Interface
	if iface == "" {
		iface = st.Agent.Interface
	}
	return []Variable{
		{VarState, string(st.Session.State)},
		{VarPauseID, pauseID},
		{VarPauseName, pauseName},
		{VarPauseType, pauseType},
		{VarStateSince, since},
		{VarInterface, iface},
	}
}

// unknownStateVars returns the AGENT_STATE variables of an unknown agent.
func unknownStateVars() []Variable {
	return []Variable{
		{VarState, StateUnknown},
		{VarPauseID, ""},
		{VarPauseName, ""},
		{VarPauseType, ""},
		{VarStateSince, ""},
		{VarInterface, ""},
	}
}

// setVariables sets the variables with Session.SetVariables: most in one
// round trip. A pause name from the directory may contain a line break,
// which would end the AGI command early, so line breaks become spaces.
func setVariables(ctx context.Context, s *Session, vars []Variable) error {
	for i := range vars {
		vars[i].Value = sanitizeValue(vars[i].Value)
	}
	return s.SetVariables(ctx, vars)
}

// sanitizeValue replaces CR, LF and NUL, which a command line cannot
// carry, with spaces.
func sanitizeValue(v string) string {
	if !strings.ContainsAny(v, "\r\n\x00") {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, v)
}
