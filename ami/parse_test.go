package ami

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func msg(keyValues ...string) Message {
	var m Message
	for i := 0; i < len(keyValues); i += 2 {
		m.Add(keyValues[i], keyValues[i+1])
	}
	return m
}

func TestParseMessages(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		limits  Limits
		want    []Message
		wantErr error
	}{
		{
			name:  "response with CRLF",
			input: "Response: Success\r\nActionID: a-1\r\nMessage: Added interface to queue\r\n\r\n",
			want:  []Message{msg("Response", "Success", "ActionID", "a-1", "Message", "Added interface to queue")},
		},
		{
			name:  "bare LF line ends",
			input: "Response: Success\nActionID: a-1\n\n",
			want:  []Message{msg("Response", "Success", "ActionID", "a-1")},
		},
		{
			name:  "mixed line ends",
			input: "Event: FullyBooted\r\nPrivilege: system,all\n\r\n",
			want:  []Message{msg("Event", "FullyBooted", "Privilege", "system,all")},
		},
		{
			name:  "colon inside value",
			input: "Response: Error\r\nMessage: Unable to add interface: Already there\r\n\r\n",
			want:  []Message{msg("Response", "Error", "Message", "Unable to add interface: Already there")},
		},
		{
			name:  "repeated keys kept in order",
			input: "Event: Newchannel\r\nVariable: A=1\r\nVariable: B=2\r\nVariable: A=3\r\n\r\n",
			want:  []Message{msg("Event", "Newchannel", "Variable", "A=1", "Variable", "B=2", "Variable", "A=3")},
		},
		{
			name: "command output keeps leading spaces",
			input: "Response: Success\r\nActionID: c-1\r\nMessage: Command output follows\r\n" +
				"Output: Channel              Location\r\nOutput:   0 active channels\r\nOutput: \r\n\r\n",
			want: []Message{msg("Response", "Success", "ActionID", "c-1", "Message", "Command output follows",
				"Output", "Channel              Location", "Output", "  0 active channels", "Output", "")},
		},
		{
			name:  "empty values with and without space",
			input: "Event: QueueMemberPause\r\nPausedReason: \r\nReason:\r\n\r\n",
			want:  []Message{msg("Event", "QueueMemberPause", "PausedReason", "", "Reason", "")},
		},
		{
			name:  "value without space after colon",
			input: "Key:value\r\n\r\n",
			want:  []Message{msg("Key", "value")},
		},
		{
			name:  "bare CR inside value kept",
			input: "Key: a\rb\r\n\r\n",
			want:  []Message{msg("Key", "a\rb")},
		},
		{
			name:  "blank lines between messages skipped",
			input: "\r\n\r\nEvent: A\r\n\r\n\r\n\nEvent: B\r\n\r\n",
			want:  []Message{msg("Event", "A"), msg("Event", "B")},
		},
		{
			name:  "empty input",
			input: "",
		},
		{
			name:    "stream ends inside message",
			input:   "Event: A\r\nQueue: sales\r\n",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "stream ends inside line",
			input:   "Event: A\r\nQue",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "line without colon",
			input:   "Event: A\r\nthis is not a field\r\n\r\n",
			wantErr: ErrMalformedLine,
		},
		{
			name:    "empty key",
			input:   ": value\r\n\r\n",
			wantErr: ErrMalformedLine,
		},
		{
			name:    "line too long",
			input:   "Event: A\r\nKey: " + strings.Repeat("x", 60) + "\r\n\r\n",
			limits:  Limits{MaxLineLength: 32},
			wantErr: ErrLineTooLong,
		},
		{
			name:    "line too long by its CR only",
			input:   "Key: " + strings.Repeat("x", 27) + "\r\r\n\r\n",
			limits:  Limits{MaxLineLength: 32},
			wantErr: ErrLineTooLong,
		},
		{
			name:   "line at maximum length",
			input:  "Key: " + strings.Repeat("x", 27) + "\r\n\r\n",
			limits: Limits{MaxLineLength: 32},
			want:   []Message{msg("Key", strings.Repeat("x", 27))},
		},
		{
			name:    "too many fields",
			input:   "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
			limits:  Limits{MaxFields: 3},
			wantErr: ErrTooManyFields,
		},
		{
			name:   "fields at maximum count",
			input:  "A: 1\r\nB: 2\r\nC: 3\r\n\r\n",
			limits: Limits{MaxFields: 3},
			want:   []Message{msg("A", "1", "B", "2", "C", "3")},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessages([]byte(tt.input), tt.limits)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestReaderSkipsMalformedMessage(t *testing.T) {
	input := "Event: A\r\nno colon here\r\nQueue: sales\r\n\r\nEvent: B\r\n\r\n"
	r := NewReader(strings.NewReader(input), Limits{})

	_, err := r.ReadMessage()
	require.ErrorIs(t, err, ErrMalformedLine)
	assert.Contains(t, err.Error(), "line 2")
	assert.Contains(t, err.Error(), "no colon here")

	next, err := r.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, msg("Event", "B"), next)
}

func TestReaderErrorIsPermanent(t *testing.T) {
	input := "Key: " + strings.Repeat("x", 100) + "\r\n\r\nEvent: B\r\n\r\n"
	r := NewReader(strings.NewReader(input), Limits{MaxLineLength: 32})

	_, err := r.ReadMessage()
	require.ErrorIs(t, err, ErrLineTooLong)
	assert.Contains(t, err.Error(), "line 1 is longer than 32 bytes")

	_, err = r.ReadMessage()
	require.ErrorIs(t, err, ErrLineTooLong)
}

func TestReaderBanner(t *testing.T) {
	r := NewReader(strings.NewReader("Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n"), Limits{})

	version, err := r.ReadBanner()
	require.NoError(t, err)
	assert.Equal(t, "11.0.0", version)

	m, err := r.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "Success", m.Response())
}

func TestReaderBannerInvalid(t *testing.T) {
	r := NewReader(strings.NewReader("SSH-2.0-OpenSSH_9.6\r\n"), Limits{})

	_, err := r.ReadBanner()
	require.ErrorIs(t, err, ErrInvalidBanner)
	assert.Contains(t, err.Error(), "SSH-2.0-OpenSSH_9.6")
}

func TestEncode(t *testing.T) {
	m := NewAction(ActionQueuePause, "Interface", "PJSIP/1001", "Paused", "true", "Reason", "lunch: 30 min")

	got, err := m.Encode()
	require.NoError(t, err)
	assert.Equal(t, "Action: QueuePause\r\nInterface: PJSIP/1001\r\nPaused: true\r\nReason: lunch: 30 min\r\n\r\n", string(got))
}

func TestEncodeRejectsInvalidField(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		value   string
		wantMsg string
	}{
		{name: "LF in value", key: "Reason", value: "x\nAction: Logoff", wantMsg: `"Reason": value contains CR or LF`},
		{name: "CR in value", key: "Reason", value: "x\rAction: Logoff", wantMsg: `"Reason": value contains CR or LF`},
		{name: "CRLF in value", key: "Queue", value: "sales\r\n\r\nAction: QueueRemove", wantMsg: `"Queue": value contains CR or LF`},
		{name: "LF in key", key: "Reason\nAction", value: "Logoff", wantMsg: `"Reason\nAction": key contains CR or LF`},
		{name: "colon in key", key: "Action: Logoff", value: "x", wantMsg: `"Action: Logoff": key contains a colon`},
		{name: "empty key", key: "", value: "x", wantMsg: "empty key"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewAction(ActionQueuePause, "Interface", "PJSIP/1001")
			m.Add(tt.key, tt.value)

			_, err := m.Encode()
			require.ErrorIs(t, err, ErrInvalidField)
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
}

func TestEncodeRejectsEmptyMessage(t *testing.T) {
	_, err := Message{}.Encode()
	require.ErrorIs(t, err, ErrInvalidField)
}

func TestEncodeParseRoundTrip(t *testing.T) {
	m := msg("Event", "Test", "Variable", "A=1", "Variable", "A=1", "Output", "  indented: with colon", "Empty", "", "Spaces", " ")

	frame, err := m.Encode()
	require.NoError(t, err)
	got, err := ParseMessages(frame, Limits{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, m, got[0])
}

// splitStream is a banner and messages with the line-end variants that
// Asterisk sends or accepts.
const splitStream = "Asterisk Call Manager/11.0.0\r\n" +
	"Response: Success\r\nActionID: agentd-1\r\nMessage: Authentication accepted\r\n\r\n" +
	"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 10\r\nLastReload: 10\r\nStatus: Fully Booted\r\n\r\n" +
	"Event: QueueMemberPause\nQueue: sales\nMemberName: Agent 1001\nInterface: PJSIP/1001\nPaused: 1\nPausedReason: lunch: long\n\n" +
	"\r\n" +
	"Response: Success\r\nActionID: agentd-2\r\nOutput: line one\r\nOutput:   line two\r\nOutput: \r\n\r\n"

func readStream(t *testing.T, r io.Reader) (string, []Message) {
	t.Helper()
	reader := NewReader(r, Limits{})
	version, err := reader.ReadBanner()
	require.NoError(t, err)

	var msgs []Message
	for {
		m, err := reader.ReadMessage()
		if errors.Is(err, io.EOF) {
			return version, msgs
		}
		require.NoError(t, err)
		msgs = append(msgs, m)
	}
}

func TestReaderSplitInput(t *testing.T) {
	data := []byte(splitStream)
	wantVersion, want := readStream(t, bytes.NewReader(data))
	require.Equal(t, "11.0.0", wantVersion)
	require.Len(t, want, 4)

	t.Run("one byte reads", func(t *testing.T) {
		version, got := readStream(t, iotest.OneByteReader(bytes.NewReader(data)))
		assert.Equal(t, wantVersion, version)
		assert.Equal(t, want, got)
	})

	t.Run("half reads", func(t *testing.T) {
		version, got := readStream(t, iotest.HalfReader(bytes.NewReader(data)))
		assert.Equal(t, wantVersion, version)
		assert.Equal(t, want, got)
	})

	t.Run("data with EOF", func(t *testing.T) {
		version, got := readStream(t, iotest.DataErrReader(bytes.NewReader(data)))
		assert.Equal(t, wantVersion, version)
		assert.Equal(t, want, got)
	})

	for i := 1; i < len(data); i++ {
		r := io.MultiReader(bytes.NewReader(data[:i]), bytes.NewReader(data[i:]))
		version, got := readStream(t, r)
		require.Equal(t, wantVersion, version, "split at byte %d", i)
		require.Equal(t, want, got, "split at byte %d", i)
	}
}

func BenchmarkReadMessage(b *testing.B) {
	frame := []byte("Event: QueueMemberPause\r\nPrivilege: agent,all\r\nSystemName: pbx1\r\nQueue: sales\r\n" +
		"MemberName: Agent 1001\r\nInterface: PJSIP/1001\r\nStateInterface: Stasis:agent-1001\r\n" +
		"Membership: dynamic\r\nPenalty: 0\r\nCallsTaken: 12\r\nLastCall: 1754000000\r\nLastPause: 1754000100\r\n" +
		"LoginTime: 1753990000\r\nInCall: 0\r\nStatus: 1\r\nPaused: 1\r\nPausedReason: 3\r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n")
	r := NewReader(&repeatReader{data: frame}, Limits{})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()

	for b.Loop() {
		if _, err := r.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader returns data over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func BenchmarkEncode(b *testing.B) {
	m := NewAction(ActionQueueAdd,
		KeyActionID, "agentd-1a2b3c4d-12345",
		"Queue", "sales",
		"Interface", "PJSIP/1001",
		"Penalty", "0",
		"Paused", "false",
		"MemberName", "Agent 1001")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()

	for b.Loop() {
		var err error
		buf, err = m.AppendEncoded(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}
