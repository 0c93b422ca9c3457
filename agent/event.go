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
)

// Change is one applied state change: the session after it, the session
// before it and what caused it. A Store persists the session and publishes
// the change as an event, in the order changes are applied for an agent.
type Change struct {
	Type       EventType
	Agent      Agent
	Pause      *Pause // the pause entered, for EventPaused; else nil
	Previous   Session
	Session    Session
	Source     Source
	OccurredAt time.Time
}
