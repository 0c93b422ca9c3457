package agi

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// usage520 is the response of Asterisk 22.10.1 to "SET VARIABLE" without
// arguments.
const usage520 = "520-Invalid command syntax.  Proper usage follows:\nSets a variable to the current channel.\n520 End of proper usage.\n"

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Response
	}{
		{"set variable", "200 result=1\n", Response{Code: 200, Result: 1}},
		{"unset variable", "200 result=0\n", Response{Code: 200, Result: 0}},
		{"negative result", "200 result=-1\n", Response{Code: 200, Result: -1}},
		{"exec not found", "200 result=-2\n", Response{Code: 200, Result: -2}},
		{"data", "200 result=1 (READY)\n", Response{Code: 200, Result: 1, Data: "READY"}},
		{"data with quotes, backslash and spaces", "200 result=1 (a \"q\" b\\c  d)\n", Response{Code: 200, Result: 1, Data: "a \"q\" b\\c  d"}},
		{"data with parentheses", "200 result=1 (a (b) c))\n", Response{Code: 200, Result: 1, Data: "a (b) c)"}},
		{"empty data", "200 result=1 ()\n", Response{Code: 200, Result: 1}},
		{"endpos", "200 result=0 endpos=1234\n", Response{Code: 200, Extra: map[string]string{"endpos": "1234"}}},
		{"data and endpos", "200 result=1 (timeout) endpos=8000\n", Response{Code: 200, Result: 1, Data: "timeout", Extra: map[string]string{"endpos": "8000"}}},
		{"digit", "200 result=53 (dtmf) digit=5 endpos=0\n", Response{Code: 200, Result: 53, Data: "dtmf", Extra: map[string]string{"digit": "5", "endpos": "0"}}},
		{"CRLF", "200 result=1\r\n", Response{Code: 200, Result: 1}},
		{"HANGUP first", "HANGUP\n200 result=1\n", Response{Code: 200, Result: 1}},
		{"two HANGUP lines first", "HANGUP\nHANGUP\n200 result=1 (X)\n", Response{Code: 200, Result: 1, Data: "X"}},
		{"unknown command", "510 Invalid or unknown command\n", Response{Code: 510, Text: "Invalid or unknown command"}},
		{"dead channel", "511 Command Not Permitted on a dead channel or intercept routine\n", Response{Code: 511, Text: "Command Not Permitted on a dead channel or intercept routine"}},
		{"usage not available", "520 Invalid command syntax.  Proper usage not available.\n", Response{Code: 520, Text: "Invalid command syntax.  Proper usage not available."}},
		{"usage block of Asterisk 22", usage520, Response{Code: 520, Text: "Invalid command syntax.  Proper usage follows:", Usage: []string{"Sets a variable to the current channel."}}},
		{
			"usage block with HANGUP, blank and numeric lines",
			"520-Invalid command syntax.  Proper usage follows:\nUsage: x\nHANGUP\n\n200 result=1\n520 End of proper usage.\n",
			Response{Code: 520, Text: "Invalid command syntax.  Proper usage follows:", Usage: []string{"Usage: x", "HANGUP", "", "200 result=1"}},
		},
		{"empty usage block", "520-X\n520 End of proper usage.\n", Response{Code: 520, Text: "X", Usage: []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResponse([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			again, err := ParseResponse([]byte(got.String() + "\n"))
			require.NoError(t, err, "String() = %q", got.String())
			assert.Equal(t, got, again, "String() = %q", got.String())
		})
	}
}

func TestParseResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		message string
	}{
		{"empty", "", "incomplete response"},
		{"only HANGUP", "HANGUP\n", "incomplete response"},
		{"blank line", "\n", "too short"},
		{"no line end", "200 result=1", "no line end"},
		{"bytes after response", "200 result=1\n200 result=1\n", "after the response"},
		{"text", "hello world\n", "3-digit code"},
		{"code only", "200\n", "too short"},
		{"leading zero code", "020 result=1\n", "3-digit code"},
		{"signed code", "+20 result=1\n", "3-digit code"},
		{"four-digit code", "2000 result=1\n", "no space after the code"},
		{"dash on 200", "200-result=1\n", "no space after the code"},
		{"unknown code", "100 result=0 Trying...\n", "unknown code 100"},
		{"no result", "200 ok\n", "lacks result="},
		{"empty result", "200 result=\n", "not an integer"},
		{"text result", "200 result=one\n", "not an integer"},
		{"result overflow", "200 result=99999999999\n", "not an integer"},
		{"unclosed data", "200 result=1 (abc\n", "no ')'"},
		{"word after result", "200 result=1 junk\n", "not key=value"},
		{"extra without key", "200 result=1 =5\n", "not key=value"},
		{"extra key with symbol", "200 result=1 (x) a(=5\n", "not key=value"},
		{"repeated extra", "200 result=1 endpos=1 endpos=2\n", "appears twice"},
		{"usage block not closed", "520-Invalid command syntax.\nUsage\n", "incomplete response"},
		{"usage block too long", "520-X\n" + strings.Repeat("line\n", maxUsageLines+1) + "520 End of proper usage.\n", "longer than 256 lines"},
		{"binary", "\x00\x01\x02\x03\n", "3-digit code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseResponse([]byte(tt.in))
			require.ErrorIs(t, err, ErrInvalidResponse)
			assert.ErrorContains(t, err, tt.message)
		})
	}
}

func TestResponseEndPos(t *testing.T) {
	pos, ok := Response{Code: 200, Extra: map[string]string{"endpos": "8000"}}.EndPos()
	assert.True(t, ok)
	assert.Equal(t, int64(8000), pos)

	_, ok = Response{Code: 200}.EndPos()
	assert.False(t, ok)

	_, ok = Response{Code: 200, Extra: map[string]string{"endpos": "x"}}.EndPos()
	assert.False(t, ok)
}
