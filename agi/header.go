package agi

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Limits of the header parser. res_agi's setup_env() in Asterisk 20–22
// writes about 25 variables and at most 127 agi_arg_N lines, because
// MAX_ARGS is 128 there.
const (
	maxHeaderLines = 512
	maxHeaderArgs  = 127
)

// Header names read by the server.
const (
	headerNetworkScript = "agi_network_script"
	headerRequest       = "agi_request"
	headerChannel       = "agi_channel"
	headerUniqueID      = "agi_uniqueid"
	headerArgPrefix     = "agi_arg_"
)

// Header is the agi_* environment that Asterisk sends when a FastAGI
// session starts, ended by a blank line.
type Header struct {
	// Vars maps each variable name as sent, such as "agi_channel", to its
	// value. The agi_arg_N variables are in Args instead.
	Vars map[string]string
	// Args lists the values of agi_arg_1 … agi_arg_N: the arguments after
	// the URL in AGI(agi://host/script,arg1,arg2).
	Args []string
}

// Get returns the value of the header variable name, or "" when absent.
func (h Header) Get(name string) string {
	return h.Vars[name]
}

// Script returns agi_network_script: the text after the host and port in
// the AGI URL, query string included, such as "agent_state?agent=1001".
// Asterisk omits the variable when the URL has no path.
func (h Header) Script() string {
	return h.Vars[headerNetworkScript]
}

// Channel returns agi_channel, the name of the channel running AGI().
func (h Header) Channel() string {
	return h.Vars[headerChannel]
}

// UniqueID returns agi_uniqueid, the Uniqueid of the channel.
func (h Header) UniqueID() string {
	return h.Vars[headerUniqueID]
}

// ParseHeader parses a complete header: "agi_<name>: <value>" lines, each
// ended by "\n" ("\r" before it is dropped), then a blank line. Bytes
// after the blank line are an error.
func ParseHeader(data []byte) (Header, error) {
	var p headerParser
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok {
			return Header{}, fmt.Errorf("%w: last line has no line end: %w", ErrInvalidHeader, io.ErrUnexpectedEOF)
		}
		data = rest
		done, err := p.line(trimCR(string(line)))
		if err != nil {
			return Header{}, err
		}
		if done {
			if len(data) > 0 {
				return Header{}, fmt.Errorf("%w: %d bytes after the blank line", ErrInvalidHeader, len(data))
			}
			return p.h, nil
		}
	}
	return Header{}, fmt.Errorf("%w: no blank line ends the header: %w", ErrInvalidHeader, io.ErrUnexpectedEOF)
}

// headerParser builds a Header from lines without their line ends. It is
// shared by ParseHeader and the stream reader.
type headerParser struct {
	h     Header
	lines int
}

// line adds one line. It returns done at the blank line that ends the
// header.
func (p *headerParser) line(line string) (done bool, err error) {
	if line == "" {
		if len(p.h.Vars) == 0 && len(p.h.Args) == 0 {
			return false, fmt.Errorf("%w: blank line before any variable", ErrInvalidHeader)
		}
		return true, nil
	}
	p.lines++
	if p.lines > maxHeaderLines {
		return false, fmt.Errorf("%w: more than %d lines", ErrInvalidHeader, maxHeaderLines)
	}
	name, value, err := splitHeaderLine(line)
	if err != nil {
		return false, err
	}
	if n, isArg := strings.CutPrefix(name, headerArgPrefix); isArg {
		return false, p.addArg(n, value)
	}
	if _, dup := p.h.Vars[name]; dup {
		return false, fmt.Errorf("%w: %s sent twice", ErrInvalidHeader, name)
	}
	if p.h.Vars == nil {
		// Asterisk 22 sends 22 variables before the arguments.
		p.h.Vars = make(map[string]string, 24)
	}
	p.h.Vars[name] = value
	return false, nil
}

// addArg appends agi_arg_N. Asterisk writes the arguments in order from
// agi_arg_1, so N must be the next index.
func (p *headerParser) addArg(index, value string) error {
	want := len(p.h.Args) + 1
	if index != strconv.Itoa(want) {
		return fmt.Errorf("%w: got %s%s, expected %s%d", ErrInvalidHeader, headerArgPrefix, index, headerArgPrefix, want)
	}
	if want > maxHeaderArgs {
		return fmt.Errorf("%w: more than %d arguments", ErrInvalidHeader, maxHeaderArgs)
	}
	p.h.Args = append(p.h.Args, value)
	return nil
}

// splitHeaderLine splits "agi_name: value". setup_env() writes
// "agi_%s: %s\n", so the value starts after ": "; a line "agi_name:" with
// nothing after the colon has an empty value.
func splitHeaderLine(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", fmt.Errorf("%w: line %.64q has no ':'", ErrInvalidHeader, line)
	}
	if !validHeaderName(name) {
		return "", "", fmt.Errorf("%w: name %.64q is not agi_ followed by letters, digits or '_'", ErrInvalidHeader, name)
	}
	if value != "" {
		value, ok = strings.CutPrefix(value, " ")
		if !ok {
			return "", "", fmt.Errorf("%w: no space after the colon in %.64q", ErrInvalidHeader, line)
		}
	}
	return name, value, nil
}

func validHeaderName(name string) bool {
	rest, ok := strings.CutPrefix(name, "agi_")
	if !ok || rest == "" {
		return false
	}
	for _, c := range []byte(rest) {
		if !isWordByte(c) {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// trimCR drops the "\r" characters at the end of a line. Asterisk ends
// lines with "\n" alone; a peer sending "\r\n" is read the same way.
func trimCR(line string) string {
	return strings.TrimRight(line, "\r")
}

// Request is the script name and the arguments of a session.
type Request struct {
	// Script is the path of the AGI URL without the query string and
	// without leading or trailing '/', such as "agent_state".
	Script string
	// Query holds the parsed query string of the AGI URL, such as
	// agent=1001 for agi://host/agent_state?agent=1001.
	Query url.Values
	// Args lists agi_arg_1 … agi_arg_N.
	Args []string
}

// Request returns the script name, query and arguments of the header. An
// invalid query string gives an error together with the pairs that did
// parse, as url.ParseQuery does.
func (h Header) Request() (Request, error) {
	path, rawQuery, _ := strings.Cut(h.Script(), "?")
	query, err := url.ParseQuery(rawQuery)
	req := Request{Script: strings.Trim(path, "/"), Query: query, Args: h.Args}
	if err != nil {
		return req, fmt.Errorf("query string %q of script %q: %w", rawQuery, req.Script, err)
	}
	return req, nil
}

// Arg returns argument i (from 0) when it is set and not empty, else the
// query parameter name. Dialplan can thus write agent_state,1001 or
// agent_state?agent=1001.
func (r Request) Arg(i int, name string) string {
	if i < len(r.Args) && r.Args[i] != "" {
		return r.Args[i]
	}
	return r.Query.Get(name)
}
