package ari

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventJSON returns an ARI event with the common fields and body, which is
// the rest of the JSON object without braces.
func eventJSON(eventType, body string) string {
	s := `{"type":"` + eventType + `","application":"agentd","timestamp":"2025-03-04T10:20:30.123+0100","asterisk_id":"02:42:ac:11:00:02"`
	if body != "" {
		s += "," + body
	}
	return s + "}"
}

func TestDecodeEventCommonFields(t *testing.T) {
	raw := eventJSON("ChannelToneDetected", `"channel":`+channelJSON)

	e, err := decodeEvent([]byte(raw))

	require.NoError(t, err)
	assert.Equal(t, "ChannelToneDetected", e.Type)
	assert.Equal(t, "agentd", e.Application)
	assert.Equal(t, "02:42:ac:11:00:02", e.AsteriskID)
	assert.True(t, e.Timestamp.Equal(time.Date(2025, 3, 4, 9, 20, 30, 123e6, time.UTC)))
	assert.JSONEq(t, raw, string(e.Raw))
}

func TestDecodeEventMalformed(t *testing.T) {
	for _, raw := range []string{``, `{`, `[1,2]`, `"text"`, `null`, `{}`, `{"type":""}`, `{"type":7}`} {
		_, err := decodeEvent([]byte(raw))
		assert.ErrorIs(t, err, ErrMalformedEvent, "%q", raw)
	}
}

func TestDecodeEventBadTimestamp(t *testing.T) {
	e, err := decodeEvent([]byte(`{"type":"StasisEnd","timestamp":"2025-03-04T10:20:30Z"}`))

	require.Error(t, err)
	require.NotErrorIs(t, err, ErrMalformedEvent)
	assert.Equal(t, "StasisEnd", e.Type)
	assert.True(t, e.Timestamp.IsZero())
}

func TestEventPayloads(t *testing.T) {
	tests := []struct {
		eventType string
		body      string
		want      any
	}{
		{EventChannelCreated, `"channel":` + channelJSON, nil},
		{EventChannelStateChange, `"channel":` + channelJSON, nil},
		{EventChannelDestroyed, `"cause":16,"cause_txt":"Normal Clearing","tech_cause":200,"channel":` + channelJSON, nil},
		{EventDeviceStateChanged, `"device_state":{"name":"Stasis:agent-1001","state":"INUSE"}`,
			DeviceStateChanged{DeviceState: DeviceState{Name: "Stasis:agent-1001", State: DeviceInUse}}},
		{EventEndpointStateChange, `"endpoint":{"technology":"PJSIP","resource":"1001","state":"offline","channel_ids":[]}`,
			EndpointStateChange{Endpoint: Endpoint{Technology: "PJSIP", Resource: "1001", State: EndpointOffline, ChannelIDs: []string{}}}},
		{EventStasisEnd, `"channel":` + channelJSON, nil},
		{EventApplicationReplaced, "", ApplicationReplaced{}},
	}
	for _, tt := range tests {
		t.Run(tt.eventType, func(t *testing.T) {
			e, err := decodeEvent([]byte(eventJSON(tt.eventType, tt.body)))
			require.NoError(t, err)

			payload, err := e.Payload()
			require.NoError(t, err)

			if tt.want != nil {
				assert.Equal(t, tt.want, payload)
				return
			}
			assert.Equal(t, "1741080030.42", payloadChannel(t, payload).ID)
		})
	}
}

// payloadChannel returns the channel of a channel event payload.
func payloadChannel(t *testing.T, payload any) Channel {
	t.Helper()
	switch p := payload.(type) {
	case ChannelCreated:
		return p.Channel
	case ChannelStateChange:
		return p.Channel
	case ChannelDestroyed:
		assert.Equal(t, 16, p.Cause)
		assert.Equal(t, "Normal Clearing", p.CauseTxt)
		assert.Equal(t, 200, p.TechCause)
		return p.Channel
	case StasisEnd:
		return p.Channel
	}
	t.Fatalf("payload %T has no channel", payload)
	return Channel{}
}

func TestDialPayload(t *testing.T) {
	body := `"caller":` + channelJSON + `,"peer":` + channelJSON + `,"dialstring":"PJSIP/1001","dialstatus":"ANSWER"`
	e, err := decodeEvent([]byte(eventJSON(EventDial, body)))
	require.NoError(t, err)

	payload, err := e.Payload()

	require.NoError(t, err)
	dial, ok := payload.(Dial)
	require.True(t, ok, "payload is %T", payload)
	require.NotNil(t, dial.Caller)
	assert.Equal(t, "1741080030.42", dial.Caller.ID)
	assert.Equal(t, "PJSIP/1001-00000007", dial.Peer.Name)
	assert.Equal(t, "ANSWER", dial.Dialstatus)
	assert.Equal(t, "PJSIP/1001", dial.Dialstring)
	assert.Nil(t, dial.Forwarded)
}

func TestStasisStartPayload(t *testing.T) {
	body := `"args":["agent","1001"],"channel":` + channelJSON
	e, err := decodeEvent([]byte(eventJSON(EventStasisStart, body)))
	require.NoError(t, err)

	payload, err := e.Payload()

	require.NoError(t, err)
	start, ok := payload.(StasisStart)
	require.True(t, ok, "payload is %T", payload)
	assert.Equal(t, []string{"agent", "1001"}, start.Args)
	assert.Equal(t, "1741080030.42", start.Channel.ID)
	assert.Nil(t, start.ReplaceChannel)
}

func TestPayloadUnknownType(t *testing.T) {
	e, err := decodeEvent([]byte(eventJSON("ChannelToneDetected", "")))
	require.NoError(t, err)

	payload, err := e.Payload()

	require.ErrorIs(t, err, ErrUnknownEventType)
	assert.Contains(t, err.Error(), "ChannelToneDetected")
	assert.Nil(t, payload)
}

func TestPayloadBadField(t *testing.T) {
	e, err := decodeEvent([]byte(eventJSON(EventChannelDestroyed, `"cause":"sixteen"`)))
	require.NoError(t, err)

	_, err = e.Payload()

	require.Error(t, err)
	assert.Contains(t, err.Error(), "decode ChannelDestroyed event")
}

func TestDecodeIntoOwnType(t *testing.T) {
	e, err := decodeEvent([]byte(eventJSON("ChannelVarset", `"variable":"AGENT_STATE","value":"READY"`)))
	require.NoError(t, err)

	var varset struct {
		Variable string `json:"variable"`
		Value    string `json:"value"`
	}
	require.NoError(t, e.Decode(&varset))

	assert.Equal(t, "AGENT_STATE", varset.Variable)
	assert.Equal(t, "READY", varset.Value)
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(eventJSON(EventChannelStateChange, `"channel":`+channelJSON)))
	f.Add([]byte(eventJSON(EventDeviceStateChanged, `"device_state":{"name":"Stasis:agent-1001","state":"INUSE"}`)))
	f.Add([]byte(`{"type":"StasisEnd","timestamp":"2025-03-04T10:20:30Z"}`))
	f.Add([]byte(`{"type":"",`))
	f.Add([]byte(`[]`))

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEvent(data)
		if errors.Is(err, ErrMalformedEvent) {
			return
		}

		require.NotEmpty(t, e.Type)
		require.Equal(t, string(data), string(e.Raw))
		if err != nil {
			require.True(t, e.Timestamp.IsZero(), "timestamp set despite %v", err)
		}
		if payload, perr := e.Payload(); perr == nil {
			require.NotNil(t, payload)
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	data := []byte(eventJSON(EventChannelStateChange, `"channel":`+channelJSON))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventPayload(b *testing.B) {
	e, err := decodeEvent([]byte(eventJSON(EventChannelStateChange, `"channel":`+channelJSON)))
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Payload(); err != nil {
			b.Fatal(err)
		}
	}
}
