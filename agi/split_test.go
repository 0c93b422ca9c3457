package agi

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamResult is what a reader makes of a whole FastAGI stream: the
// header, then each response with the HANGUP lines skipped before it.
type streamResult struct {
	Header    Header
	Responses []Response
	Hangups   []int
	Err       string
}

// readStream reads a header and then responses until the stream ends.
func readStream(r io.Reader) streamResult {
	rd := newReader(r, DefaultMaxLineBytes)
	var res streamResult
	h, err := rd.readHeader()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Header = h
	for {
		resp, err := rd.readResponse()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			res.Err = err.Error()
			return res
		}
		res.Responses = append(res.Responses, resp)
		res.Hangups = append(res.Hangups, rd.hangups)
	}
}

// splitStream returns a stream of a header and responses of every kind,
// with HANGUP lines before, between and inside them.
func splitStream(t *testing.T) []byte {
	header, err := os.ReadFile("testdata/header-asterisk-22.10.1.txt")
	require.NoError(t, err)
	var b bytes.Buffer
	b.Write(header)
	b.WriteString("HANGUP\n200 result=1\n")
	b.WriteString("200 result=1 (a \"q\" b\\c  d)\n")
	b.WriteString("510 Invalid or unknown command\n")
	b.WriteString(usage520)
	b.WriteString("HANGUP\nHANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
	b.WriteString("200 result=0 endpos=1234\r\n")
	b.WriteString("520-Invalid command syntax.  Proper usage follows:\nHANGUP\n\n520 End of proper usage.\n")
	b.WriteString("200 result=1 ()\n")
	return b.Bytes()
}

func TestReaderSplitInput(t *testing.T) {
	data := splitStream(t)
	want := readStream(bytes.NewReader(data))
	require.Empty(t, want.Err)
	require.Len(t, want.Responses, 8)
	assert.Equal(t, []int{1, 1, 1, 1, 3, 3, 3, 3}, want.Hangups)
	assert.Equal(t, []string{"HANGUP", ""}, want.Responses[6].Usage, "HANGUP inside a usage block is usage text")

	t.Run("one byte at a time", func(t *testing.T) {
		got := readStream(iotest.OneByteReader(bytes.NewReader(data)))
		assert.Equal(t, want, got)
	})
	t.Run("half reads", func(t *testing.T) {
		got := readStream(iotest.HalfReader(bytes.NewReader(data)))
		assert.Equal(t, want, got)
	})
	for i := 1; i < len(data); i++ {
		got := readStream(io.MultiReader(bytes.NewReader(data[:i]), bytes.NewReader(data[i:])))
		if !assert.Equal(t, want, got, "split at byte %d", i) {
			return
		}
	}
}

func TestReaderMatchesPureParsers(t *testing.T) {
	data := splitStream(t)
	got := readStream(bytes.NewReader(data))

	end := bytes.Index(data, []byte("\n\n")) + 2
	h, err := ParseHeader(data[:end])
	require.NoError(t, err)
	assert.Equal(t, h, got.Header)

	first, err := ParseResponse([]byte("HANGUP\n200 result=1\n"))
	require.NoError(t, err)
	assert.Equal(t, first, got.Responses[0])
	usage, err := ParseResponse([]byte(usage520))
	require.NoError(t, err)
	assert.Equal(t, usage, got.Responses[3])
}

func TestReaderLineTooLong(t *testing.T) {
	line := bytes.Repeat([]byte("a"), DefaultMaxLineBytes+1)

	_, err := newReader(bytes.NewReader(append(line, '\n')), DefaultMaxLineBytes).readHeader()
	require.ErrorIs(t, err, ErrLineTooLong)

	_, err = newReader(bytes.NewReader(line), DefaultMaxLineBytes).readResponse()
	require.ErrorIs(t, err, ErrLineTooLong)
}

func TestReaderLongestLine(t *testing.T) {
	value := bytes.Repeat([]byte("v"), DefaultMaxLineBytes-len("200 result=1 ()"))
	line := append(append([]byte("200 result=1 ("), value...), ")\n"...)

	resp, err := newReader(bytes.NewReader(line), DefaultMaxLineBytes).readResponse()

	require.NoError(t, err)
	assert.Equal(t, string(value), resp.Data)
}

func TestReaderEndOfStream(t *testing.T) {
	_, err := newReader(bytes.NewReader(nil), DefaultMaxLineBytes).readResponse()
	require.ErrorIs(t, err, io.EOF)

	_, err = newReader(bytes.NewReader([]byte("200 res")), DefaultMaxLineBytes).readResponse()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)

	_, err = newReader(bytes.NewReader([]byte("agi_network: yes\n")), DefaultMaxLineBytes).readHeader()
	require.ErrorIs(t, err, io.EOF)
}
