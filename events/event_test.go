package events

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

var origin = eventOrigin{node: "pbx1", asteriskEntityID: "52:54:00:1a:2b:3c"}

func buildEvent(t *testing.T, c agent.Change) Event {
	t.Helper()
	ev, err := newEvent(c, newEventID(c.OccurredAt), origin)
	require.NoError(t, err)
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	validateEvent(t, payload)
	return ev
}

func TestNewEventLogin(t *testing.T) {
	a := newSimAgent("1001")
	ev := buildEvent(t, a.login())

	assert.Equal(t, SchemaVersion, ev.Schema)
	assert.Equal(t, agent.EventLoggedIn, ev.Type)
	assert.Equal(t, "1001", ev.AgentID)
	assert.Equal(t, "Agent 1001", ev.AgentName)
	assert.Equal(t, "PJSIP/1001", ev.Interface)
	assert.Equal(t, agent.StateReady, ev.State)
	assert.Equal(t, agent.StateOffline, ev.PreviousState)
	assert.Equal(t, agent.StateReady, ev.EffectiveState)
	assert.Equal(t, agent.StateOffline, ev.PreviousEffectiveState)
	assert.Empty(t, ev.CallState)
	assert.False(t, ev.Unavailable)
	assert.Nil(t, ev.Pause)
	assert.Empty(t, ev.PreviousPauseID)
	assert.Equal(t, []EventQueue{{Name: "sales", Penalty: 0}, {Name: "support", Penalty: 2}}, ev.Queues)
	assert.Equal(t, agent.SourceAPI, ev.Source)
	assert.Equal(t, "2026-12-04T20:15:04.623Z", ev.OccurredAt)
	assert.Equal(t, "pbx1", ev.Node)
	assert.Equal(t, "52:54:00:1a:2b:3c", ev.AsteriskEntityID)
	assert.Equal(t, uint64(1), ev.Revision)
}

func TestNewEventPauseAndUnpause(t *testing.T) {
	a := newSimAgent("1001")
	a.login()
	paused := buildEvent(t, a.pause(lunch))
	require.NotNil(t, paused.Pause)
	assert.Equal(t, EventPause{ID: "2", Name: "Lunch", Type: agent.PauseRecreational}, *paused.Pause)
	assert.Equal(t, agent.StatePaused, paused.State)
	for _, q := range paused.Queues {
		assert.True(t, q.Paused, "queue %s paused", q.Name)
	}

	unpaused := buildEvent(t, a.unpause())
	assert.Nil(t, unpaused.Pause)
	assert.Equal(t, "2", unpaused.PreviousPauseID)
	assert.Equal(t, agent.StatePaused, unpaused.PreviousState)
	for _, q := range unpaused.Queues {
		assert.False(t, q.Paused, "queue %s paused", q.Name)
	}
}

func TestNewEventPauseNotInCatalog(t *testing.T) {
	a := newSimAgent("1001")
	a.login()
	c := a.pause(agent.Pause{ID: "7"})
	c.Pause = nil
	c.Source = agent.SourceAsterisk

	ev := buildEvent(t, c)
	require.NotNil(t, ev.Pause)
	assert.Equal(t, EventPause{ID: "7"}, *ev.Pause)
}

func TestNewEventLogoutListsRemovedQueues(t *testing.T) {
	a := newSimAgent("1001")
	a.login()
	a.pause(lunch)
	ev := buildEvent(t, a.logout())

	assert.Equal(t, agent.StateOffline, ev.State)
	assert.Equal(t, agent.StatePaused, ev.PreviousState)
	assert.Equal(t, "2", ev.PreviousPauseID)
	assert.Equal(t, []EventQueue{{Name: "sales", Penalty: 0, Paused: true}, {Name: "support", Penalty: 2, Paused: true}}, ev.Queues)
}

func TestNewEventCallState(t *testing.T) {
	a := newSimAgent("1001")
	a.login()
	ringing := buildEvent(t, a.call(agent.CallRinging))
	assert.Equal(t, agent.EventCallStateChanged, ringing.Type)
	assert.Equal(t, agent.StateReady, ringing.State)
	assert.Equal(t, agent.StateReady, ringing.PreviousState)
	assert.Equal(t, agent.StateRinging, ringing.EffectiveState)
	assert.Equal(t, agent.StateReady, ringing.PreviousEffectiveState)
	assert.Equal(t, agent.CallRinging, ringing.CallState)

	up := buildEvent(t, a.call(agent.CallUp))
	assert.Equal(t, agent.StateOnCall, up.EffectiveState)
	assert.Equal(t, agent.StateRinging, up.PreviousEffectiveState)

	ended := buildEvent(t, a.call(agent.CallNone))
	assert.Equal(t, agent.StateReady, ended.EffectiveState)
	assert.Empty(t, ended.CallState)
}

func TestNewEventUnavailable(t *testing.T) {
	a := newSimAgent("1001")
	a.login()
	c := a.call(agent.CallNone)
	c.Type = agent.EventAvailabilityChanged
	c.Session.Unavailable = true
	c.Session.UnavailableSince = c.OccurredAt

	ev := buildEvent(t, c)
	assert.True(t, ev.Unavailable)
	assert.Equal(t, agent.StateUnavailable, ev.EffectiveState)
	assert.Equal(t, agent.StateReady, ev.State)
}

func TestNewEventWithoutEntityID(t *testing.T) {
	c := newSimAgent("1001").login()
	ev, err := newEvent(c, newEventID(c.OccurredAt), eventOrigin{node: "pbx1"})
	require.NoError(t, err)
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	validateEvent(t, payload)
	assert.NotContains(t, string(payload), "asterisk_entity_id")
}

func TestNewEventRejectsInvalidChange(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*agent.Change)
	}{
		{"agent id with dot", func(c *agent.Change) { c.Session.AgentID = "10.01"; c.Agent.ID = "10.01" }},
		{"agent id with wildcard", func(c *agent.Change) { c.Session.AgentID = "*"; c.Agent.ID = "*" }},
		{"empty agent id", func(c *agent.Change) { c.Session.AgentID = ""; c.Agent.ID = "" }},
		{"agent ids differ", func(c *agent.Change) { c.Agent.ID = "1002" }},
		{"type with dot", func(c *agent.Change) { c.Type = "logged.in" }},
		{"source missing", func(c *agent.Change) { c.Source = "" }},
		{"time missing", func(c *agent.Change) { c.OccurredAt = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newSimAgent("1001").login()
			tt.modify(&c)
			_, err := newEvent(c, "id", origin)
			require.ErrorIs(t, err, ErrInvalidChange)
		})
	}
}

func TestNewEventIDIsUUIDv7(t *testing.T) {
	now := time.Date(2026, 12, 4, 20, 15, 3, 123_000_000, time.UTC)
	pattern := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newEventID(now)
		require.Regexp(t, pattern, id)
		require.False(t, seen[id], "id %s repeated", id)
		seen[id] = true
	}

	id := newEventID(now)
	hexTime := strings.ReplaceAll(id[:13], "-", "")
	assert.Equal(t, "01a242b22dd3", hexTime, "48-bit Unix time in milliseconds")
}

func TestSubject(t *testing.T) {
	assert.Equal(t, "agentd.agent.1001.paused", subject(DefaultSubjectPrefix, "1001", agent.EventPaused))
	assert.Equal(t, "cc.site1.agent_7.logged_in", subject("cc.site1", "agent_7", agent.EventLoggedIn))
}

func TestSchemaAcceptsExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "docs", "examples", "events", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			validateEvent(t, data)

			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			var ev Event
			require.NoError(t, dec.Decode(&ev), "example fields match Event")
			assert.Equal(t, strings.TrimSuffix(filepath.Base(file), ".json"), string(ev.Type))
		})
	}
}

func TestSchemaRejectsInvalidEvents(t *testing.T) {
	valid := func(t *testing.T) map[string]any {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("..", "docs", "examples", "events", "paused.json"))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		return m
	}
	tests := []struct {
		name   string
		modify func(map[string]any)
	}{
		{"schema 2", func(m map[string]any) { m["schema"] = 2 }},
		{"id missing", func(m map[string]any) { delete(m, "id") }},
		{"id not UUIDv7", func(m map[string]any) { m["id"] = "01ARZ3NDEKTSV4RRFFQ69G5FAV" }},
		{"type with dot", func(m map[string]any) { m["type"] = "logged.in" }},
		{"agent id with dot", func(m map[string]any) { m["agent_id"] = "10.01" }},
		{"unknown state", func(m map[string]any) { m["state"] = "BUSY" }},
		{"call state as state", func(m map[string]any) { m["state"] = "ONCALL" }},
		{"effective state missing", func(m map[string]any) { delete(m, "effective_state") }},
		{"unknown call state", func(m map[string]any) { m["call_state"] = "HOLD" }},
		{"paused without pause", func(m map[string]any) { delete(m, "pause") }},
		{"ready with pause", func(m map[string]any) { m["state"] = "READY" }},
		{"previous pause id while previously ready", func(m map[string]any) { m["previous_pause_id"] = "1" }},
		{"unknown pause type", func(m map[string]any) { m["pause"].(map[string]any)["type"] = "sleep" }},
		{"unknown source", func(m map[string]any) { m["source"] = "cron" }},
		{"occurred_at with offset", func(m map[string]any) { m["occurred_at"] = "2026-12-04T21:18:45.002+01:00" }},
		{"occurred_at without milliseconds", func(m map[string]any) { m["occurred_at"] = "2026-12-04T20:18:45Z" }},
		{"queue without penalty", func(m map[string]any) { delete(m["queues"].([]any)[0].(map[string]any), "penalty") }},
		{"revision 0", func(m map[string]any) { m["revision"] = 0 }},
		{"node empty", func(m map[string]any) { m["node"] = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid(t)
			tt.modify(m)
			data, err := json.Marshal(m)
			require.NoError(t, err)
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			require.NoError(t, err)
			assert.Error(t, eventSchema(t).Validate(inst))
		})
	}
}
