package events

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/contactcenter/agentd/agent"
)

// SchemaVersion is the payload version written in every event as "schema".
// It changes only when a field changes meaning or is removed.
const SchemaVersion = 1

// TimeLayout is the format of occurred_at: RFC 3339 in UTC with
// milliseconds, e.g. 2026-12-04T20:15:03.123Z.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// ErrInvalidChange is wrapped by Commit when a change cannot be turned into
// an event subject or key, e.g. an agent id outside [A-Za-z0-9_-].
var ErrInvalidChange = errors.New("invalid change")

// Event is the JSON payload published for one session change. The fields
// are documented in docs/events.md.
type Event struct {
	Schema                 int             `json:"schema"`
	ID                     string          `json:"id"`
	Type                   agent.EventType `json:"type"`
	AgentID                string          `json:"agent_id"`
	AgentName              string          `json:"agent_name"`
	Interface              string          `json:"interface,omitempty"`
	State                  agent.State     `json:"state"`
	PreviousState          agent.State     `json:"previous_state"`
	EffectiveState         agent.State     `json:"effective_state"`
	PreviousEffectiveState agent.State     `json:"previous_effective_state"`
	CallState              agent.CallState `json:"call_state,omitempty"`
	Unavailable            bool            `json:"unavailable,omitempty"`
	Pause                  *EventPause     `json:"pause,omitempty"`
	PreviousPauseID        string          `json:"previous_pause_id,omitempty"`
	Queues                 []EventQueue    `json:"queues"`
	Source                 agent.Source    `json:"source"`
	OccurredAt             string          `json:"occurred_at"`
	Node                   string          `json:"node"`
	AsteriskEntityID       string          `json:"asterisk_entity_id,omitempty"`
	Revision               uint64          `json:"revision"`
}

// EventPause is the pause an agent is in. Name and Type are empty when the
// pause id is not in the pause catalog, e.g. a pause set in Asterisk.
type EventPause struct {
	ID   string          `json:"id"`
	Name string          `json:"name,omitempty"`
	Type agent.PauseType `json:"type,omitempty"`
}

// EventQueue is one queue membership of the agent.
type EventQueue struct {
	Name    string `json:"name"`
	Penalty int    `json:"penalty"`
	Paused  bool   `json:"paused"`
}

// eventOrigin is the part of every event that comes from the Store, not
// from the change.
type eventOrigin struct {
	node             string
	asteriskEntityID string
}

// newEvent builds the event of c. id must be unique, see newEventID.
func newEvent(c agent.Change, id string, origin eventOrigin) (Event, error) {
	if err := validateChange(c); err != nil {
		return Event{}, err
	}

	ev := Event{
		Schema:                 SchemaVersion,
		ID:                     id,
		Type:                   c.Type,
		AgentID:                c.Session.AgentID,
		AgentName:              c.Agent.Name,
		Interface:              sessionInterface(c),
		State:                  stateOrOffline(c.Session.State),
		PreviousState:          stateOrOffline(c.Previous.State),
		EffectiveState:         stateOrOffline(c.Session.Effective()),
		PreviousEffectiveState: stateOrOffline(c.Previous.Effective()),
		CallState:              c.Session.CallState,
		Unavailable:            c.Session.Unavailable,
		Pause:                  eventPause(c),
		Queues:                 eventQueues(c),
		Source:                 c.Source,
		OccurredAt:             c.OccurredAt.UTC().Format(TimeLayout),
		Node:                   origin.node,
		AsteriskEntityID:       origin.asteriskEntityID,
		Revision:               c.Session.Revision,
	}
	if c.Previous.Paused() {
		ev.PreviousPauseID = c.Previous.PauseID
	}
	return ev, nil
}

func validateChange(c agent.Change) error {
	if !tokenPattern.MatchString(c.Session.AgentID) {
		return fmt.Errorf("%w: agent id %q is not a subject token: use letters, digits, _ and -", ErrInvalidChange, c.Session.AgentID)
	}
	if c.Agent.ID != "" && c.Agent.ID != c.Session.AgentID {
		return fmt.Errorf("%w: agent id %q differs from session agent id %q", ErrInvalidChange, c.Agent.ID, c.Session.AgentID)
	}
	if !eventTypePattern.MatchString(string(c.Type)) {
		return fmt.Errorf("%w: event type %q: use lower-case letters, digits and _", ErrInvalidChange, c.Type)
	}
	if c.Source == "" {
		return fmt.Errorf("%w: source missing for agent %s", ErrInvalidChange, c.Session.AgentID)
	}
	if c.OccurredAt.IsZero() {
		return fmt.Errorf("%w: occurred_at missing for agent %s", ErrInvalidChange, c.Session.AgentID)
	}
	return nil
}

// stateOrOffline maps the zero state of a session never logged in to
// OFFLINE, as agent.StateOffline documents.
func stateOrOffline(s agent.State) agent.State {
	if s == "" {
		return agent.StateOffline
	}
	return s
}

func sessionInterface(c agent.Change) string {
	for _, s := range []agent.Session{c.Session, c.Previous} {
		if s.Interface != "" {
			return s.Interface
		}
	}
	return c.Agent.Interface
}

// eventPause returns the pause the agent is in after c, or nil.
func eventPause(c agent.Change) *EventPause {
	if !c.Session.Paused() {
		return nil
	}
	if c.Pause != nil && c.Pause.ID == c.Session.PauseID {
		return &EventPause{ID: c.Pause.ID, Name: c.Pause.Name, Type: c.Pause.Type}
	}
	return &EventPause{ID: c.Session.PauseID}
}

// eventQueues returns the memberships after c. A change that ends the
// login leaves none, so for it the removed memberships are returned, as
// they were before c.
func eventQueues(c agent.Change) []EventQueue {
	s := c.Session
	if !s.LoggedIn() && c.Previous.LoggedIn() {
		s = c.Previous
	}
	queues := make([]EventQueue, 0, len(s.Members))
	for _, m := range s.Members {
		queues = append(queues, EventQueue{Name: m.Queue, Penalty: m.Penalty, Paused: s.Paused()})
	}
	return queues
}

// subject returns <prefix>.<agent_id>.<type>.
func subject(prefix, agentID string, t agent.EventType) string {
	return prefix + "." + agentID + "." + string(t)
}

// newEventID returns a UUID version 7 (RFC 9562): 48 bits of Unix time in
// milliseconds, then 74 random bits. IDs sort by creation time to the
// millisecond.
func newEventID(now time.Time) string {
	var b [16]byte
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(now.UnixMilli()))
	copy(b[:6], ts[2:])
	// crypto/rand.Read never returns an error since Go 1.24.
	_, _ = rand.Read(b[6:])
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f

	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
