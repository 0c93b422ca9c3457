package agi

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Response codes that res_agi's agi_handle_command() writes in Asterisk
// 20–22.
const (
	CodeSuccess        = 200
	CodeInvalidCommand = 510
	CodeDeadChannel    = 511
	CodeUsage          = 520
)

// hangupLine is written by res_agi's run_agi() when the channel hangs up
// and again when the AGI ends, between responses and unrequested.
const hangupLine = "HANGUP"

// usageEnd is the last line of a multi-line 520 response.
const usageEnd = "520 End of proper usage."

// maxUsageLines is the maximum number of usage lines in a 520 response.
// Asterisk writes the usage text of one AGI command there, a few lines in
// the case checked (SET VARIABLE on 22.10.1).
const maxUsageLines = 256

// Response is the reply of Asterisk to one AGI command.
type Response struct {
	// Code is 200, 510, 511 or 520.
	Code int
	// Result is N of "200 result=N". GET VARIABLE sets 1 when the variable
	// exists and 0 when it does not; SET VARIABLE always sets 1.
	Result int
	// Data is the text in parentheses after the result, from the first "("
	// to the last ")", such as the value returned by GET VARIABLE.
	Data string
	// Extra holds the key=value pairs after the result and data of a 200
	// response, such as endpos=1234.
	Extra map[string]string
	// Text is the message after the code of a 510, 511 or 520 response.
	Text string
	// Usage lists the usage lines between "520-…" and "520 End of proper
	// usage.".
	Usage []string
}

// EndPos returns the endpos=N value of a 200 response, if present.
func (r Response) EndPos() (int64, bool) {
	v, ok := r.Extra["endpos"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// String formats the response the way Asterisk writes it, one line per
// line of the response, without the final "\n".
func (r Response) String() string {
	if r.Code == CodeUsage && r.Usage != nil {
		lines := append([]string{fmt.Sprintf("%d-%s", r.Code, r.Text)}, r.Usage...)
		return strings.Join(append(lines, usageEnd), "\n")
	}
	if r.Code != CodeSuccess {
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d result=%d", r.Code, r.Result)
	if r.Data != "" {
		b.WriteString(" (" + r.Data + ")")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		b.WriteString(" " + k + "=" + r.Extra[k])
	}
	return b.String()
}

// ParseResponse parses the response to one command from complete lines,
// each ended by "\n" ("\r" before it is dropped). "HANGUP" lines before
// the response are skipped, as the session does. Bytes after the response
// are an error.
func ParseResponse(data []byte) (Response, error) {
	var p responseParser
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok {
			return Response{}, fmt.Errorf("%w: last line has no line end: %w", ErrInvalidResponse, io.ErrUnexpectedEOF)
		}
		data = rest
		done, err := p.line(trimCR(string(line)))
		if err != nil {
			return Response{}, err
		}
		if done {
			if len(data) > 0 {
				return Response{}, fmt.Errorf("%w: %d bytes after the response", ErrInvalidResponse, len(data))
			}
			return p.resp, nil
		}
	}
	return Response{}, fmt.Errorf("%w: incomplete response: %w", ErrInvalidResponse, io.ErrUnexpectedEOF)
}

// responseParser builds a Response from lines without their line ends. It
// is shared by ParseResponse and the stream reader.
type responseParser struct {
	resp    Response
	inUsage bool
	hangups int
}

// line adds one line. It returns done when the response is complete.
func (p *responseParser) line(line string) (done bool, err error) {
	switch {
	case p.inUsage:
		return p.usageLine(line)
	case line == hangupLine:
		p.hangups++
		return false, nil
	}
	resp, more, err := parseStatusLine(line)
	if err != nil {
		return false, err
	}
	p.resp = resp
	if more {
		p.inUsage = true
		p.resp.Usage = []string{}
	}
	return !more, nil
}

// usageLine adds a line of a 520 usage block. res_agi writes the usage
// text and the closing line in one go, so every line up to the one that
// starts with "520 " belongs to the block, even "HANGUP".
func (p *responseParser) usageLine(line string) (done bool, err error) {
	if strings.HasPrefix(line, "520 ") {
		return true, nil
	}
	if len(p.resp.Usage) >= maxUsageLines {
		return false, fmt.Errorf("%w: 520 usage block longer than %d lines", ErrInvalidResponse, maxUsageLines)
	}
	p.resp.Usage = append(p.resp.Usage, line)
	return false, nil
}

// parseStatusLine parses the first line of a response. more reports a
// "520-" line that opens a usage block.
func parseStatusLine(line string) (resp Response, more bool, err error) {
	if len(line) < 4 {
		return Response{}, false, fmt.Errorf("%w: %.64q is too short", ErrInvalidResponse, line)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil || line[0] < '1' || line[0] > '9' {
		return Response{}, false, fmt.Errorf("%w: %.64q does not start with a 3-digit code", ErrInvalidResponse, line)
	}
	sep, rest := line[3], line[4:]
	switch {
	case sep == '-' && code == CodeUsage:
		return Response{Code: code, Text: rest}, true, nil
	case sep != ' ':
		return Response{}, false, fmt.Errorf("%w: %.64q has no space after the code", ErrInvalidResponse, line)
	case code == CodeSuccess:
		resp, err := parseSuccess(rest)
		return resp, false, err
	case code == CodeInvalidCommand, code == CodeDeadChannel, code == CodeUsage:
		return Response{Code: code, Text: rest}, false, nil
	default:
		return Response{}, false, fmt.Errorf("%w: unknown code %d in %.64q", ErrInvalidResponse, code, line)
	}
}

// parseSuccess parses what follows "200 ": "result=N", then optionally
// " (data)", then optionally " key=value" pairs.
func parseSuccess(rest string) (Response, error) {
	resp := Response{Code: CodeSuccess}
	value, ok := strings.CutPrefix(rest, "result=")
	if !ok {
		return Response{}, fmt.Errorf("%w: 200 response %.64q lacks result=", ErrInvalidResponse, rest)
	}
	number, tail, _ := strings.Cut(value, " ")
	n, err := strconv.ParseInt(number, 10, 32)
	if err != nil {
		return Response{}, fmt.Errorf("%w: result %.32q is not an integer", ErrInvalidResponse, number)
	}
	resp.Result = int(n)
	tail = strings.TrimLeft(tail, " ")
	if strings.HasPrefix(tail, "(") {
		end := strings.LastIndexByte(tail, ')')
		if end < 0 {
			return Response{}, fmt.Errorf("%w: no ')' closes the data in %.64q", ErrInvalidResponse, rest)
		}
		resp.Data = tail[1:end]
		tail = tail[end+1:]
	}
	resp.Extra, err = parseExtra(tail)
	return resp, err
}

// parseExtra parses space-separated key=value pairs, such as
// " endpos=1234" or " digit=5 endpos=0". A "\r" separates pairs too, so
// that no value ends with one.
func parseExtra(s string) (map[string]string, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
	if len(fields) == 0 {
		return nil, nil
	}
	extra := make(map[string]string, len(fields))
	for _, f := range fields {
		key, value, ok := strings.Cut(f, "=")
		if !ok || !validExtraKey(key) {
			return nil, fmt.Errorf("%w: %.64q is not key=value", ErrInvalidResponse, f)
		}
		if _, dup := extra[key]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrInvalidResponse, key)
		}
		extra[key] = value
	}
	return extra, nil
}

func validExtraKey(key string) bool {
	if key == "" {
		return false
	}
	for _, c := range []byte(key) {
		if !isWordByte(c) {
			return false
		}
	}
	return true
}
