package ami

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// FuzzParseMessages checks that any input parses without panic, that the
// result does not depend on how reads split the input, that every message
// respects the limits, and that every encodable message survives an
// encode-parse round trip. The seed corpus is in testdata/fuzz.
func FuzzParseMessages(f *testing.F) {
	f.Add([]byte(splitStream))
	f.Add([]byte("Response: Error\r\nActionID: x\r\nMessage: Unable to add interface: Already there\r\n\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		limits := Limits{MaxLineLength: 128, MaxFields: 16}
		msgs, err := ParseMessages(data, limits)

		split, splitErr := readAllMessages(iotest.OneByteReader(bytes.NewReader(data)), limits)
		require.Equal(t, msgs, split)
		require.Equal(t, errorText(err), errorText(splitErr))

		for _, m := range msgs {
			checkParsedMessage(t, m, limits)
		}
	})
}

func checkParsedMessage(t *testing.T, m Message, limits Limits) {
	require.Positive(t, m.Len())
	require.LessOrEqual(t, m.Len(), limits.MaxFields)

	hasCR := false
	for _, f := range m.Fields {
		require.NotEmpty(t, f.Key)
		require.NotContains(t, f.Key, ":")
		require.NotContains(t, f.Key, "\n")
		require.NotContains(t, f.Value, "\n")
		require.LessOrEqual(t, len(f.Key)+len(f.Value)+1, limits.MaxLineLength)
		hasCR = hasCR || strings.Contains(f.Key, "\r") || strings.Contains(f.Value, "\r")
	}

	frame, err := m.Encode()
	if hasCR {
		require.ErrorIs(t, err, ErrInvalidField)
		return
	}
	require.NoError(t, err)

	again, err := ParseMessages(frame, Limits{})
	require.NoError(t, err)
	require.Equal(t, []Message{m}, again)
}

func readAllMessages(r io.Reader, limits Limits) ([]Message, error) {
	reader := NewReader(r, limits)
	var msgs []Message
	for {
		m, err := reader.ReadMessage()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
