package testbench

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadAMIMessage(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []map[string]string
	}{
		{
			name:  "response",
			input: "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n",
			want:  []map[string]string{{"Response": "Success", "ActionID": "1", "Message": "Authentication accepted"}},
		},
		{
			name:  "empty value and colon in value",
			input: "Event: UserEvent\r\nAGENT_ERROR: \r\nAGENT_INTERFACE: Local/1001@agent-phones/n\r\nData: a: b\r\n\r\n",
			want: []map[string]string{{
				"Event": "UserEvent", "AGENT_ERROR": "", "AGENT_INTERFACE": "Local/1001@agent-phones/n", "Data": "a: b",
			}},
		},
		{
			name:  "repeated key keeps first value",
			input: "Event: X\r\nVariable: a=1\r\nVariable: b=2\r\n\r\n",
			want:  []map[string]string{{"Event": "X", "Variable": "a=1"}},
		},
		{
			name:  "two messages with stray blank line",
			input: "\r\nEvent: A\r\n\r\nEvent: B\nKey: v\n\n",
			want:  []map[string]string{{"Event": "A"}, {"Event": "B", "Key": "v"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, reader := range []struct {
				name string
				wrap func(string) *bufio.Reader
			}{
				{"whole", func(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }},
				{"one byte at a time", func(s string) *bufio.Reader { return bufio.NewReader(iotest.OneByteReader(strings.NewReader(s))) }},
			} {
				r := reader.wrap(tt.input)
				for i, want := range tt.want {
					got, err := readAMIMessage(r)
					require.NoError(t, err, "%s: message %d", reader.name, i)
					assert.Equal(t, want, got, "%s: message %d", reader.name, i)
				}
			}
		})
	}
}

func TestReadAMIMessageMalformedLine(t *testing.T) {
	_, err := readAMIMessage(bufio.NewReader(strings.NewReader("Event: X\r\nno colon here\r\n\r\n")))

	require.ErrorIs(t, err, errMalformedLine)
}

func TestOriginateRequestHeaders(t *testing.T) {
	req := OriginateRequest{
		Channel:   "Local/agi@agent-phones/n",
		Context:   "agentd-agi",
		Exten:     "pause",
		Timeout:   5 * time.Second,
		Variables: map[string]string{"PAUSE_ID": "7", "AGENT": "1001"},
		Async:     true,
	}

	assert.Equal(t, []amiHeader{
		{"Channel", "Local/agi@agent-phones/n"},
		{"Async", "true"},
		{"Context", "agentd-agi"},
		{"Exten", "pause"},
		{"Priority", "1"},
		{"Timeout", "5000"},
		{"Variable", "AGENT=1001"},
		{"Variable", "PAUSE_ID=7"},
	}, req.headers())
}

func TestParseQueueLogLine(t *testing.T) {
	tests := []struct {
		input string
		want  QueueLogLine
	}{
		{
			input: "1796415378|MANAGER|demo|Local/9101@agent-phones/n|ADDMEMBER|PAUSED",
			want: QueueLogLine{
				Time: time.Unix(1796415378, 0), CallID: "MANAGER", Queue: "demo",
				Agent: "Local/9101@agent-phones/n", Event: "ADDMEMBER", Data: []string{"PAUSED"},
			},
		},
		{
			input: "1796415387|MANAGER|demo|Local/9101@agent-phones/n|REMOVEMEMBER|",
			want: QueueLogLine{
				Time: time.Unix(1796415387, 0), CallID: "MANAGER", Queue: "demo",
				Agent: "Local/9101@agent-phones/n", Event: "REMOVEMEMBER", Data: []string{""},
			},
		},
		{
			input: "1796415390|1796415390.4|sales|Agent 1001|CONNECT|1|1796415390.6|0",
			want: QueueLogLine{
				Time: time.Unix(1796415390, 0), CallID: "1796415390.4", Queue: "sales",
				Agent: "Agent 1001", Event: "CONNECT", Data: []string{"1", "1796415390.6", "0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.want.Event, func(t *testing.T) {
			got, err := parseQueueLogLine(tt.input)

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseQueueLogLineMalformed(t *testing.T) {
	for _, input := range []string{"", "1796415378|MANAGER|demo|iface", "yesterday|MANAGER|demo|iface|ADDMEMBER|"} {
		_, err := parseQueueLogLine(input)

		assert.ErrorIs(t, err, errMalformedQueueLog, "input %q", input)
	}
}

func TestParseQueueStatus(t *testing.T) {
	events := []map[string]string{
		{"Event": "QueueParams", "Queue": "sales"},
		{
			"Event": "QueueMember", "Queue": "sales", "Name": "Agent 9101", "Location": "Local/9101@agent-phones/n",
			"StateInterface": "Stasis:agent-9101", "Penalty": "2", "Status": "5", "Paused": "1", "PausedReason": "Lunch",
		},
		{"Event": "QueueStatusComplete", "EventList": "Complete"},
	}

	members, found, err := parseQueueStatus(events)

	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, []QueueMember{{
		Interface: "Local/9101@agent-phones/n", MemberName: "Agent 9101", StateInterface: "Stasis:agent-9101",
		Penalty: 2, Paused: true, PausedReason: "Lunch", Status: 5,
	}}, members)
}

func TestParseQueueStatusUnknownQueue(t *testing.T) {
	members, found, err := parseQueueStatus([]map[string]string{{"Event": "QueueStatusComplete", "EventList": "Complete"}})

	require.NoError(t, err)
	assert.False(t, found)
	assert.Empty(t, members)
}

// recordingTB records Skip and Fatal instead of stopping the goroutine, so a
// test can call Require and inspect what it did.
type recordingTB struct {
	testing.TB
	skipped string
	fatal   string
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recordingTB) Fatal(args ...any)                 { r.fatal = fmt.Sprint(args...) }
func (r *recordingTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func clearBenchEnv(t *testing.T) {
	for _, name := range []string{
		EnvAMIAddr, EnvAMIUser, EnvAMISecret, EnvAMIBenchUser, EnvAMIBenchSecret,
		EnvARIURL, EnvARIUser, EnvARIPassword, EnvSandboxRoot,
	} {
		t.Setenv(name, "")
	}
}

func TestRequireSkipsWithoutEnvironment(t *testing.T) {
	clearBenchEnv(t)
	t.Setenv(EnvRequireAsterisk, "")
	recorder := &recordingTB{TB: t}

	bench := Require(recorder)

	assert.Nil(t, bench)
	assert.Empty(t, recorder.fatal)
	assert.Contains(t, recorder.skipped, EnvAMIAddr)
	assert.Contains(t, recorder.skipped, "scripts/asterisk-sandbox.sh start")
}

func TestRequireFailsWhenAsteriskRequired(t *testing.T) {
	clearBenchEnv(t)
	t.Setenv(EnvRequireAsterisk, "1")
	recorder := &recordingTB{TB: t}

	bench := Require(recorder)

	assert.Nil(t, bench)
	assert.Empty(t, recorder.skipped)
	assert.Contains(t, recorder.fatal, EnvSandboxRoot)
	assert.Contains(t, recorder.fatal, EnvRequireAsterisk+"=1")
}

func TestRequireFailsWhenAMIUnreachable(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := listener.Addr().String()
	require.NoError(t, listener.Close())

	clearBenchEnv(t)
	for name, value := range map[string]string{
		EnvAMIAddr: closedAddr, EnvAMIUser: "agentd", EnvAMISecret: "s", EnvAMIBenchUser: "bench",
		EnvAMIBenchSecret: "s", EnvARIURL: "http://127.0.0.1:1", EnvARIUser: "agentd",
		EnvARIPassword: "s", EnvSandboxRoot: t.TempDir(),
	} {
		t.Setenv(name, value)
	}
	recorder := &recordingTB{TB: t}

	bench := Require(recorder)

	assert.Nil(t, bench)
	assert.Contains(t, recorder.fatal, closedAddr)
}

func TestUniqueNameDiffers(t *testing.T) {
	first, second := UniqueName("tb"), UniqueName("tb")

	assert.NotEqual(t, first, second)
	assert.Regexp(t, `^tb[0-9]+$`, first)
}
