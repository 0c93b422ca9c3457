package agi

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFormatCommand(t *testing.T) {
	tests := []struct {
		name  string
		words string
		args  []string
		want  string
	}{
		{"no arguments", "NOOP", nil, "NOOP\n"},
		{"plain value", "SET VARIABLE", []string{"AGENT_STATE", "READY"}, "SET VARIABLE \"AGENT_STATE\" \"READY\"\n"},
		{"spaces", "SET VARIABLE", []string{"AGENT_PAUSE_NAME", "Lunch  break"}, "SET VARIABLE \"AGENT_PAUSE_NAME\" \"Lunch  break\"\n"},
		{"quotes and backslashes", "SET VARIABLE", []string{"X", `a "q" b\c`}, `SET VARIABLE "X" "a \"q\" b\\c"` + "\n"},
		{"empty value", "SET VARIABLE", []string{"AGENT_PAUSE_ID", ""}, "SET VARIABLE \"AGENT_PAUSE_ID\" \"\"\n"},
		{"function name", "SET VARIABLE", []string{"QUEUE_MEMBER(sales,paused,PJSIP/1001)", "1"}, "SET VARIABLE \"QUEUE_MEMBER(sales,paused,PJSIP/1001)\" \"1\"\n"},
		{"tab and UTF-8", "VERBOSE", []string{"a\tb ñ", "1"}, "VERBOSE \"a\tb ñ\" \"1\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := formatCommand(tt.words, tt.args)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			parsed := asteriskParseArgs(strings.TrimSuffix(got, "\n"))
			assert.Equal(t, append(strings.Fields(tt.words), tt.args...), parsed)
		})
	}
}

func TestFormatCommandErrors(t *testing.T) {
	tests := []struct {
		name    string
		words   string
		args    []string
		message string
	}{
		{"newline in value", "SET VARIABLE", []string{"X", "a\nb"}, "argument 2 of SET VARIABLE contains a line break"},
		{"carriage return in value", "SET VARIABLE", []string{"X", "a\rb"}, "line break"},
		{"NUL in name", "SET VARIABLE", []string{"X\x00", "a"}, "argument 1"},
		{"empty words", "", nil, "not words separated by single spaces"},
		{"double space in words", "SET  VARIABLE", nil, "not words separated by single spaces"},
		{"trailing space in words", "NOOP ", nil, "not words separated by single spaces"},
		{"quote in words", `SET VARIABLE "X"`, nil, "pass values as arguments"},
		{"newline in words", "NOOP\nHANGUP", nil, "pass values as arguments"},
		{"line too long", "SET VARIABLE", []string{"X", strings.Repeat("y", maxCommandBytes)}, "Asterisk reads at most 8191"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := formatCommand(tt.words, tt.args)
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.ErrorContains(t, err, tt.message)
		})
	}
}

func TestFormatCommandLongestLine(t *testing.T) {
	// SET VARIABLE "X" "…" and the line end take 20 bytes besides the value.
	value := strings.Repeat("y", maxCommandBytes-20)

	line, err := formatCommand("SET VARIABLE", []string{"X", value})
	require.NoError(t, err)
	assert.Len(t, line, maxCommandBytes)

	_, err = formatCommand("SET VARIABLE", []string{"X", value + "y"})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

// FuzzFormatCommand checks that every argument formatCommand accepts
// reaches Asterisk's parse_args() unchanged.
func FuzzFormatCommand(f *testing.F) {
	f.Add("X", `a "q" b\c`)
	f.Add("", "")
	f.Add(`\`, `"`)
	f.Add("a b", "\t\\\"")
	f.Fuzz(func(t *testing.T, name, value string) {
		line, err := formatCommand("SET VARIABLE", []string{name, value})
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidArgument)
			return
		}
		require.True(t, strings.HasSuffix(line, "\n"))
		require.Equal(t, 1, strings.Count(line, "\n"))
		assert.Equal(t, []string{"SET", "VARIABLE", name, value}, asteriskParseArgs(strings.TrimSuffix(line, "\n")))
	})
}
