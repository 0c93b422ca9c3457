package agi

import (
	"fmt"
	"strings"
)

// maxCommandBytes is the longest command line Asterisk reads whole, "\n"
// included. run_agi() reads a command with fgets into a buffer of
// AGI_BUF_LEN (8192) bytes. Checked against Asterisk 22.10.1: a line of
// 8184 bytes arrived whole, while one of 8234 bytes was cut and its
// remainder ran as a second command that got a 510 response. That breaks
// the pairing of commands and responses.
const maxCommandBytes = 8191

// formatCommand builds one command line, "\n" included: the command words
// as given, then each argument in double quotes. Asterisk's parse_args()
// drops the quotes, takes "\" as an escape for the next character, and
// splits unquoted text on spaces and tabs, so an argument with spaces,
// quotes or backslashes arrives unchanged and "" is an empty argument.
func formatCommand(words string, args []string) (string, error) {
	if err := checkWords(words); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(words)
	for i, arg := range args {
		if strings.ContainsAny(arg, "\r\n\x00") {
			return "", fmt.Errorf("%w: argument %d of %s contains a line break or NUL byte: %.64q", ErrInvalidArgument, i+1, words, arg)
		}
		b.WriteString(" ")
		b.WriteString(quoteArg(arg))
	}
	b.WriteString("\n")
	if b.Len() > maxCommandBytes {
		return "", fmt.Errorf("%w: %s command is %d bytes, Asterisk reads at most %d", ErrInvalidArgument, words, b.Len(), maxCommandBytes)
	}
	return b.String(), nil
}

// checkWords accepts command words such as "SET VARIABLE": letters, digits,
// '_' and single spaces.
func checkWords(words string) error {
	if words == "" || words[0] == ' ' || words[len(words)-1] == ' ' || strings.Contains(words, "  ") {
		return fmt.Errorf("%w: command %.64q is not words separated by single spaces", ErrInvalidArgument, words)
	}
	for _, c := range []byte(words) {
		if c != ' ' && !isWordByte(c) {
			return fmt.Errorf("%w: command %.64q contains %q; pass values as arguments", ErrInvalidArgument, words, c)
		}
	}
	return nil
}

// quoteArg wraps an argument in double quotes and escapes '"' and '\'.
func quoteArg(arg string) string {
	var b strings.Builder
	b.Grow(len(arg) + 2)
	b.WriteByte('"')
	for _, c := range []byte(arg) {
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
