package ami

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewAction(t *testing.T) {
	m := NewAction(ActionQueueAdd, "Queue", "sales", "Interface", "PJSIP/1001")

	assert.Equal(t, []Field{
		{Key: "Action", Value: "QueueAdd"},
		{Key: "Queue", Value: "sales"},
		{Key: "Interface", Value: "PJSIP/1001"},
	}, m.Fields)
	assert.Equal(t, ActionQueueAdd, m.Action())
}

func TestNewActionOddArguments(t *testing.T) {
	assert.Panics(t, func() { NewAction(ActionQueueAdd, "Queue") }) //nolint:staticcheck // SA5012: the odd argument count is the case under test
}

func TestMessageGetIgnoresCase(t *testing.T) {
	m := msg("ActionID", "a-1", "EVENT", "QueueMemberPause")

	assert.Equal(t, "a-1", m.Get("actionid"))
	assert.Equal(t, "a-1", m.ActionID())
	assert.Equal(t, "QueueMemberPause", m.Event())
	assert.True(t, m.IsEvent())
	assert.False(t, m.IsResponse())
	assert.Empty(t, m.Get("Queue"))

	_, ok := m.Lookup("Queue")
	assert.False(t, ok)
}

func TestMessageValues(t *testing.T) {
	m := msg("Variable", "A=1", "Queue", "sales", "variable", "B=2")

	assert.Equal(t, []string{"A=1", "B=2"}, m.Values("Variable"))
	assert.Equal(t, "A=1", m.Get("Variable"))
	assert.Nil(t, m.Values("Output"))
}

func TestMessageSet(t *testing.T) {
	m := msg("Action", "Ping", "ActionID", "old-1", "Queue", "sales", "actionid", "old-2")
	before := m

	m.Set("ActionID", "new")

	assert.Equal(t, msg("Action", "Ping", "ActionID", "new", "Queue", "sales"), m)
	assert.Equal(t, "old-1", before.ActionID(), "Set must not change a copy made before")
}

func TestMessageSetAppends(t *testing.T) {
	m := msg("Action", "Ping")
	m.Set("ActionID", "a-1")
	assert.Equal(t, msg("Action", "Ping", "ActionID", "a-1"), m)
}

func TestMessageDel(t *testing.T) {
	m := msg("Action", "Ping", "Variable", "A=1", "variable", "B=2")
	m.Del("Variable")
	assert.Equal(t, msg("Action", "Ping"), m)
}

func TestMessageClone(t *testing.T) {
	m := msg("Action", "Ping")
	clone := m.Clone()
	clone.Fields[0].Value = "Logoff"

	assert.Equal(t, "Ping", m.Action())
	assert.Equal(t, Message{}, Message{}.Clone())
}

func TestMessageStringRedactsSecret(t *testing.T) {
	m := NewAction(ActionLogin, "Username", "agentd", "Secret", "s3cret", "key", "md5-digest")

	s := m.String()

	require.NotContains(t, s, "s3cret")
	require.NotContains(t, s, "md5-digest")
	assert.Equal(t, "Action: Login\nUsername: agentd\nSecret: <redacted>\nkey: <redacted>", s)
}
