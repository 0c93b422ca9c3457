package agent

import "time"

// State is the session state of an agent as agentd reports it to the API,
// to FastAGI (AGENT_STATE) and in events.
type State string

// Session states. OFFLINE is also the state of an agent never logged in.
// READY and PAUSED are the states the agent chose; RINGING, ONCALL and
// UNAVAILABLE are reported over them while a call is offered or up, or
// while the agent's endpoint is offline (see Session.Effective).
const (
	StateOffline     State = "OFFLINE"
	StateReady       State = "READY"
	StatePaused      State = "PAUSED"
	StateRinging     State = "RINGING"
	StateOnCall      State = "ONCALL"
	StateUnavailable State = "UNAVAILABLE"
)

// CallState is the state of the calls on the agent's interface.
type CallState string

// Call states. The empty value means no call.
const (
	CallNone    CallState = ""
	CallRinging CallState = "RINGING"
	CallUp      CallState = "ONCALL"
)

// Source names where a state change came from, as written in events.
type Source string

// Sources of state changes.
const (
	SourceAPI       Source = "api"
	SourceAGI       Source = "agi"
	SourceAsterisk  Source = "asterisk"
	SourceReconcile Source = "reconcile"
	SourceTimer     Source = "timer"
)

// Member is one queue membership as applied to Asterisk: the values sent in
// AMI QueueAdd and needed again for QueueRemove.
type Member struct {
	Queue      string `json:"queue"`
	Interface  string `json:"interface"`
	MemberName string `json:"member_name"`
	Penalty    int    `json:"penalty"`
}

// Session is the durable state of one agent. It records the memberships
// that were applied, so that a logout after a directory change or a daemon
// restart removes the members that Asterisk really has.
type Session struct {
	AgentID   string    `json:"agent_id"`
	State     State     `json:"state"`
	PauseID   string    `json:"pause_id,omitempty"`
	Since     time.Time `json:"since"`
	Interface string    `json:"interface,omitempty"`
	Members   []Member  `json:"members,omitempty"`
	// CallState is set while a call rings or is up on the interface.
	CallState CallState `json:"call_state,omitempty"`
	// Unavailable is set while the agent's endpoint is offline (phone
	// unregistered, browser closed) and the agent is logged in.
	Unavailable      bool      `json:"unavailable,omitempty"`
	UnavailableSince time.Time `json:"unavailable_since,omitzero"`
	// Revision counts the changes applied to this session; it starts at 1
	// with the first change and lets stores and subscribers order them.
	Revision uint64 `json:"revision"`
}

// LoggedIn reports whether the agent is a queue member (ready or paused).
func (s Session) LoggedIn() bool {
	return s.State == StateReady || s.State == StatePaused
}

// Paused reports whether the agent is in a pause.
func (s Session) Paused() bool {
	return s.State == StatePaused
}

// Effective returns the state to report: a call state over the chosen
// state, then UNAVAILABLE while the endpoint is offline.
func (s Session) Effective() State {
	switch {
	case !s.LoggedIn():
		return s.State
	case s.CallState == CallUp:
		return StateOnCall
	case s.CallState == CallRinging:
		return StateRinging
	case s.Unavailable:
		return StateUnavailable
	default:
		return s.State
	}
}
