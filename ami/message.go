package ami

import (
	"strings"
)

// Keys with a meaning to the protocol itself.
const (
	KeyAction    = "Action"
	KeyActionID  = "ActionID"
	KeyResponse  = "Response"
	KeyEvent     = "Event"
	KeyMessage   = "Message"
	KeyEventList = "EventList"
)

// Values of the Response key. Asterisk sends Goodbye in reply to Logoff.
const (
	ResponseValueSuccess = "Success"
	ResponseValueError   = "Error"
	ResponseValueGoodbye = "Goodbye"
)

// Values of the EventList key. Asterisk starts a list in the response
// ("start") and ends it with an event that carries "Complete".
const (
	EventListStart    = "start"
	EventListComplete = "Complete"
)

// Action names used by agentd.
const (
	ActionLogin       = "Login"
	ActionLogoff      = "Logoff"
	ActionPing        = "Ping"
	ActionCommand     = "Command"
	ActionQueueAdd    = "QueueAdd"
	ActionQueueRemove = "QueueRemove"
	ActionQueuePause  = "QueuePause"
	ActionQueueStatus = "QueueStatus"
)

// Event names used by agentd. QueueMember, QueueParams and
// QueueStatusComplete are the list events of the QueueStatus action.
const (
	EventFullyBooted          = "FullyBooted"
	EventQueueMemberAdded     = "QueueMemberAdded"
	EventQueueMemberRemoved   = "QueueMemberRemoved"
	EventQueueMemberPause     = "QueueMemberPause"
	EventQueueMemberStatus    = "QueueMemberStatus"
	EventQueueMemberPenalty   = "QueueMemberPenalty"
	EventQueueMemberRinginuse = "QueueMemberRinginuse"
	EventQueueParams          = "QueueParams"
	EventQueueMember          = "QueueMember"
	EventQueueStatusComplete  = "QueueStatusComplete"
)

// Field is one "Key: Value" line of a message.
type Field struct {
	Key   string
	Value string
}

// Message is one AMI frame: an action, a response or an event. Fields keep
// their order, and a key may repeat (Variable, Output). Key lookups ignore
// case, as Asterisk does. The zero Message is empty and ready to use.
type Message struct {
	Fields []Field
}

// NewAction returns a message with "Action: name" followed by the fields
// given as key, value pairs. It panics on an odd number of keyValues,
// because that is a programming error.
func NewAction(name string, keyValues ...string) Message {
	if len(keyValues)%2 != 0 {
		panic("ami: NewAction: odd number of key/value arguments")
	}

	m := Message{Fields: make([]Field, 0, 1+len(keyValues)/2)}
	m.Add(KeyAction, name)
	for i := 0; i < len(keyValues); i += 2 {
		m.Add(keyValues[i], keyValues[i+1])
	}
	return m
}

// Add appends a field, keeping any field with the same key.
func (m *Message) Add(key, value string) {
	m.Fields = append(m.Fields, Field{Key: key, Value: value})
}

// Set replaces the first field named key and deletes the others with that
// key. It appends the field when the key is absent. Set and Del build a new
// slice, so copies of m made before the call are not changed.
func (m *Message) Set(key, value string) {
	fields := make([]Field, 0, len(m.Fields)+1)
	found := false
	for _, f := range m.Fields {
		if !strings.EqualFold(f.Key, key) {
			fields = append(fields, f)
			continue
		}
		if !found {
			fields = append(fields, Field{Key: f.Key, Value: value})
			found = true
		}
	}
	m.Fields = fields
	if !found {
		m.Add(key, value)
	}
}

// Del deletes every field named key.
func (m *Message) Del(key string) {
	fields := make([]Field, 0, len(m.Fields))
	for _, f := range m.Fields {
		if !strings.EqualFold(f.Key, key) {
			fields = append(fields, f)
		}
	}
	m.Fields = fields
}

// Lookup returns the value of the first field named key and whether the
// message has such a field.
func (m Message) Lookup(key string) (string, bool) {
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			return f.Value, true
		}
	}
	return "", false
}

// Get returns the value of the first field named key, or "" when absent.
func (m Message) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Values returns the values of every field named key, in message order.
func (m Message) Values(key string) []string {
	var values []string
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			values = append(values, f.Value)
		}
	}
	return values
}

// Len returns the number of fields.
func (m Message) Len() int {
	return len(m.Fields)
}

// Clone returns a copy that shares no memory with m.
func (m Message) Clone() Message {
	if m.Fields == nil {
		return Message{}
	}
	return Message{Fields: append([]Field(nil), m.Fields...)}
}

// Action returns the value of the Action key.
func (m Message) Action() string { return m.Get(KeyAction) }

// ActionID returns the value of the ActionID key.
func (m Message) ActionID() string { return m.Get(KeyActionID) }

// Event returns the value of the Event key.
func (m Message) Event() string { return m.Get(KeyEvent) }

// Response returns the value of the Response key.
func (m Message) Response() string { return m.Get(KeyResponse) }

// IsResponse reports whether m has a Response key.
func (m Message) IsResponse() bool {
	_, ok := m.Lookup(KeyResponse)
	return ok
}

// IsEvent reports whether m has an Event key.
func (m Message) IsEvent() bool {
	_, ok := m.Lookup(KeyEvent)
	return ok
}

// String formats m as "Key: Value" lines for logs and test output. It
// replaces the values of Secret and Key (the MD5 login digest) with
// "<redacted>", so that a logged Login action does not leak the secret.
func (m Message) String() string {
	var b strings.Builder
	for i, f := range m.Fields {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(f.Key)
		b.WriteString(": ")
		if isSecretKey(f.Key) {
			b.WriteString("<redacted>")
			continue
		}
		b.WriteString(f.Value)
	}
	return b.String()
}

func isSecretKey(key string) bool {
	return strings.EqualFold(key, "Secret") || strings.EqualFold(key, "Key")
}
