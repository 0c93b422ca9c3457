package agent_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/contactcenter/agentd/agent"
)

func TestParseDirectoryBuildsAgents(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	require.NoError(t, err)
	src := `
member_name_template: "{id}_{name}"
builtin_pauses: {after_call: "Post llamada"}
pauses:
  - {id: 00x, name: Odd}
  - {id: 5, name: Almuerzo, type: recreational}
agents:
  - id: 1001
    name: "José Núñez"
    interface: PJSIP/1001
    password_hash: "` + string(hash) + `"
    queues: [{name: 12_ventas, penalty: 2}]
`
	d, err := agent.ParseDirectory("dir.yaml", []byte(src))
	require.NoError(t, err)

	a, ok := d.Agent("1001")
	require.True(t, ok)
	assert.Equal(t, "1001_Jos-N-ez", a.MemberName)
	assert.Equal(t, []agent.QueueRef{{Name: "12_ventas", Penalty: 2}}, a.Queues)
	assert.Equal(t, "Stasis:agent-1001", a.DeviceName())
	byIface, ok := d.AgentByInterface("PJSIP/1001")
	require.True(t, ok)
	assert.Equal(t, "1001", byIface.ID)

	acw, ok := d.Pause("0")
	require.True(t, ok)
	assert.Equal(t, "Post llamada", acw.Name)
	sup, ok := d.Pause("00")
	require.True(t, ok)
	assert.Equal(t, agent.DefaultSupervisorPauseName, sup.Name)
	lunch, ok := d.Pause("5")
	require.True(t, ok)
	assert.Equal(t, agent.PauseRecreational, lunch.Type)
	_, ok = d.Pause("00x")
	assert.True(t, ok)
	assert.Len(t, d.Pauses(), 4)
}

func TestParseDirectoryKeepsZeroPaddedIDs(t *testing.T) {
	d, err := agent.ParseDirectory("dir.yaml", []byte("pauses:\n  - {id: 007, name: Bond}\n"))
	require.NoError(t, err)

	_, ok := d.Pause("007")
	assert.True(t, ok)
	_, ok = d.Pause("7")
	assert.False(t, ok)
}

func TestParseDirectoryEmptyFile(t *testing.T) {
	d, err := agent.ParseDirectory("dir.yaml", nil)
	require.NoError(t, err)

	assert.Empty(t, d.Agents())
	assert.Len(t, d.Pauses(), 2)
}

func TestParseDirectoryReportsLines(t *testing.T) {
	src := `pauses:
  - {id: "0", name: Mine}
  - {id: "5", name: ""}
  - {id: "6", name: Six, type: lazy}
  - {id: "6", name: Again}
agents:
  - {id: "a b", name: X, interface: PJSIP/1}
  - {id: "1", name: One, interface: SIP1001}
  - {id: "2", name: Two, interface: PJSIP/2, queues: [{name: "bad queue"}, {name: q, penalty: -1}]}
  - {id: "2", name: Dup, interface: PJSIP/9}
  - {id: "3", name: Three, interface: PJSIP/2}
  - {id: "4", name: Four, interface: PJSIP/4, password_hash: plain}
  - {id: "5", interface: PJSIP/5}
`
	_, err := agent.ParseDirectory("dir.yaml", []byte(src))
	require.Error(t, err)

	want := []string{
		`dir.yaml:2: pause id "0" is built in`,
		`dir.yaml:3: pause "5" has no name`,
		`dir.yaml:4: pause "6" has type "lazy"`,
		`dir.yaml:5: pause id "6" is listed twice`,
		`dir.yaml:7: agent id "a b" is invalid`,
		`dir.yaml:8: agent "1" has interface "SIP1001": write TECH/resource`,
		`dir.yaml:9: agent "2" has queue name "bad queue"`,
		`dir.yaml:9: agent "2" has penalty -1 in queue "q"`,
		`dir.yaml:10: agent id "2" is listed twice`,
		`dir.yaml:11: agent "3" uses interface PJSIP/2, already used by agent "2"`,
		`dir.yaml:12: agent "4" has a password_hash that is not a bcrypt hash`,
		`dir.yaml:13: agent "5" has no name`,
	}
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, len(want), err.Error())
	for i, w := range want {
		assert.Contains(t, lines[i], w)
	}
}

func TestParseDirectoryRejectsUnknownKey(t *testing.T) {
	_, err := agent.ParseDirectory("dir.yaml", []byte("agents:\n  - {id: 1, name: A, interface: PJSIP/1, queue: [x]}\n"))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "dir.yaml")
	assert.Contains(t, err.Error(), "line 2")
	assert.Contains(t, err.Error(), "queue")
}

func TestParseDirectoryRejectsTemplateWithoutID(t *testing.T) {
	_, err := agent.ParseDirectory("dir.yaml", []byte("member_name_template: \"{name}\"\n"))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "dir.yaml:1: member_name_template")
}

func TestDirectoryPenaltyMustBeInteger(t *testing.T) {
	for _, penalty := range []string{"1.5", "1e1", `"2"`} {
		_, err := agent.ParseDirectory("d.yaml", []byte("agents:\n  - {id: \"1\", name: A, interface: PJSIP/1, queues: [{name: sales, penalty: "+penalty+"}]}\n"))
		require.Error(t, err, penalty)
		assert.Contains(t, err.Error(), "is not an integer: write a whole number", penalty)
	}
	d, err := agent.ParseDirectory("d.yaml", []byte("agents:\n  - {id: \"1\", name: A, interface: PJSIP/1, queues: [{name: sales, penalty: 3}]}\n"))
	require.NoError(t, err)
	a, _ := d.Agent("1")
	assert.Equal(t, 3, a.Queues[0].Penalty)
}
