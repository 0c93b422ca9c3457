package agi

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzParseResponse checks that ParseResponse never panics, that a parsed
// response survives String() and parsing again, and that the stream reader
// reads the same response from the same bytes.
func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		"200 result=1\n",
		"200 result=1 (a \"q\" b\\c  d)\n",
		"200 result=0 endpos=1234\n",
		"HANGUP\n200 result=1 (timeout) endpos=8000\n",
		"510 Invalid or unknown command\n",
		"511 Command Not Permitted on a dead channel or intercept routine\n",
		usage520,
		"520 Invalid command syntax.  Proper usage not available.\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := ParseResponse(data)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidResponse)
			return
		}

		again, err := ParseResponse([]byte(resp.String() + "\n"))
		require.NoError(t, err, "String() = %q", resp.String())
		assert.Equal(t, resp, again)

		rd := newReader(bytes.NewReader(data), len(data)+1)
		streamed, err := rd.readResponse()
		require.NoError(t, err)
		assert.Equal(t, resp, streamed)
		_, err = rd.readLine()
		assert.ErrorIs(t, err, io.EOF)
	})
}

// FuzzParseHeader checks that ParseHeader never panics, that what it
// accepts keeps the header's rules, and that the stream reader reads the
// same header from the same bytes.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(asteriskHeader("agent_state", "1001")))
	f.Add([]byte(asteriskHeader("agent_pause?agent=1001&pause=5")))
	f.Add([]byte("agi_network: yes\r\nagi_arg_1: \r\n\r\n"))
	f.Add([]byte("agi_arg_2: x\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidHeader)
			return
		}

		assert.LessOrEqual(t, len(h.Args), maxHeaderArgs)
		for name := range h.Vars {
			assert.True(t, validHeaderName(name), "name %q", name)
			assert.False(t, strings.HasPrefix(name, headerArgPrefix), "name %q", name)
		}
		_, err = h.Request()
		if err != nil {
			require.NotErrorIs(t, err, ErrInvalidHeader)
		}

		rd := newReader(bytes.NewReader(data), len(data)+1)
		streamed, err := rd.readHeader()
		require.NoError(t, err)
		assert.Equal(t, h, streamed)
		_, err = rd.readLine()
		assert.ErrorIs(t, err, io.EOF, "stream reader left bytes")
	})
}
