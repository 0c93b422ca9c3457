package ari

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event types that agentd decodes into typed payloads. Asterisk sends many
// more, and Event carries those too, with Raw for the caller to decode.
const (
	EventChannelCreated      = "ChannelCreated"
	EventChannelStateChange  = "ChannelStateChange"
	EventChannelDestroyed    = "ChannelDestroyed"
	EventDeviceStateChanged  = "DeviceStateChanged"
	EventEndpointStateChange = "EndpointStateChange"
	EventDial                = "Dial"
	EventStasisStart         = "StasisStart"
	EventStasisEnd           = "StasisEnd"
	EventApplicationReplaced = "ApplicationReplaced"
)

// ErrUnknownEventType is returned by Event.Payload for a type without a
// typed payload in this package.
var ErrUnknownEventType = errors.New("ari: no payload type for event")

// ErrMalformedEvent is wrapped by the error for a websocket message that
// is not a JSON object with a type.
var ErrMalformedEvent = errors.New("ari: malformed event")

// Event is one message from the /ari/events websocket. Only the fields
// that every ARI event has are decoded, and Raw contains the whole message.
type Event struct {
	Type        string
	Application string
	// Timestamp is when Asterisk created the event. It is zero when the
	// message has no timestamp or one not in TimeLayout.
	Timestamp  time.Time
	AsteriskID string // entity id of the Asterisk that sent the event
	Raw        json.RawMessage
}

// decodeEvent reads the common fields of one websocket message. A message
// that is not a JSON object with a type gives an error wrapping
// ErrMalformedEvent and no event. A timestamp not in TimeLayout gives the
// event with a zero Timestamp together with the parse error, so the caller
// can still deliver it.
func decodeEvent(data []byte) (Event, error) {
	var head struct {
		Type        string `json:"type"`
		Application string `json:"application"`
		Timestamp   string `json:"timestamp"`
		AsteriskID  string `json:"asterisk_id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	if head.Type == "" {
		return Event{}, fmt.Errorf("%w: missing type", ErrMalformedEvent)
	}

	ts, err := parseTime(head.Timestamp)
	e := Event{
		Type:        head.Type,
		Application: head.Application,
		Timestamp:   ts,
		AsteriskID:  head.AsteriskID,
		Raw:         json.RawMessage(data),
	}
	return e, err
}

// Decode unmarshals the whole event into v, e.g. a *ChannelStateChange.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Raw, v); err != nil {
		return fmt.Errorf("ari: decode %s event: %w", e.Type, err)
	}
	return nil
}

// Payload decodes the event into the typed payload for its Type, e.g. a
// ChannelStateChange value for EventChannelStateChange. For other types it
// returns an error wrapping ErrUnknownEventType.
func (e Event) Payload() (any, error) {
	switch e.Type {
	case EventChannelCreated:
		return decodeAs[ChannelCreated](e)
	case EventChannelStateChange:
		return decodeAs[ChannelStateChange](e)
	case EventChannelDestroyed:
		return decodeAs[ChannelDestroyed](e)
	case EventDeviceStateChanged:
		return decodeAs[DeviceStateChanged](e)
	case EventEndpointStateChange:
		return decodeAs[EndpointStateChange](e)
	case EventDial:
		return decodeAs[Dial](e)
	case EventStasisStart:
		return decodeAs[StasisStart](e)
	case EventStasisEnd:
		return decodeAs[StasisEnd](e)
	case EventApplicationReplaced:
		return decodeAs[ApplicationReplaced](e)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownEventType, e.Type)
}

func decodeAs[T any](e Event) (any, error) {
	var payload T
	if err := e.Decode(&payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// ChannelCreated is sent for a new channel (res/stasis/app.c
// channel_state: no previous snapshot).
type ChannelCreated struct {
	Channel Channel `json:"channel"`
}

// ChannelStateChange is sent when a channel's state changes, e.g. to
// Ringing or Up.
type ChannelStateChange struct {
	Channel Channel `json:"channel"`
}

// ChannelDestroyed is sent when a channel is hung up and destroyed.
type ChannelDestroyed struct {
	Channel  Channel `json:"channel"`
	Cause    int     `json:"cause"` // Q.850 hangup cause
	CauseTxt string  `json:"cause_txt"`
	// TechCause is the technology-specific cause such as a SIP status
	// code, when the channel driver set one.
	TechCause int `json:"tech_cause,omitempty"`
}

// DeviceStateChanged is sent for a subscribed device, with the aggregate
// state of the device.
type DeviceStateChanged struct {
	DeviceState DeviceState `json:"device_state"`
}

// EndpointStateChange is sent when an endpoint goes online or offline or
// its channels change.
type EndpointStateChange struct {
	Endpoint Endpoint `json:"endpoint"`
}

// Dial is sent when a channel dials a peer, and again with the outcome.
type Dial struct {
	Caller     *Channel `json:"caller,omitempty"` // nil for an originated call
	Peer       Channel  `json:"peer"`
	Forward    string   `json:"forward,omitempty"`
	Forwarded  *Channel `json:"forwarded,omitempty"`
	Dialstring string   `json:"dialstring,omitempty"`
	// Dialstatus is empty while dialing, then e.g. ANSWER, BUSY, NOANSWER,
	// CANCEL or CHANUNAVAIL.
	Dialstatus string `json:"dialstatus"`
}

// StasisStart is sent when a channel enters the Stasis application.
type StasisStart struct {
	Args           []string `json:"args"`
	Channel        Channel  `json:"channel"`
	ReplaceChannel *Channel `json:"replace_channel,omitempty"`
}

// StasisEnd is sent when a channel leaves the Stasis application.
type StasisEnd struct {
	Channel Channel `json:"channel"`
}

// ApplicationReplaced is sent to a websocket whose application name
// another websocket has registered. Asterisk sends that socket no further
// events, so a second agentd with the same Application takes the events
// from the first.
type ApplicationReplaced struct{}
