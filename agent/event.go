package agent

import "time"

// EventType names a state change in events and in the NATS subject.
type EventType string

// Event types.
const (
	EventLoggedIn  EventType = "logged_in"
	EventLoggedOut EventType = "logged_out"
	EventPaused    EventType = "paused"
	EventUnpaused  EventType = "unpaused"
	// EventReconciled: Asterisk was put back in line with the stored
	// session (members re-added or removed, pause state restored).
	EventReconciled EventType = "reconciled"
	// EventMembersChanged: a member was added or removed outside agentd
	// and the member policy adopted the change.
	EventMembersChanged EventType = "members_changed"
	// EventCallStateChanged: a call started ringing, was answered or ended.
	EventCallStateChanged EventType = "call_state_changed"
	// EventAvailabilityChanged: the agent's endpoint went offline or came
	// back while the agent was logged in.
	EventAvailabilityChanged EventType = "availability_changed"
)

// Change is one applied state change: the session after it, the session
// before it and what caused it. A Store persists the session and publishes
// the change as an event, in the order changes are applied for an agent.
type Change struct {
	Type       EventType
	Agent      Agent
	Pause      *Pause // the agent's pause while Session is paused; else nil
	Previous   Session
	Session    Session
	Source     Source
	OccurredAt time.Time
}
