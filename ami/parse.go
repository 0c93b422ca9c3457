package ami

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors of the protocol layer. Reader and Encode wrap them with the line
// number or the key at fault.
var (
	ErrLineTooLong   = errors.New("ami: line too long")
	ErrTooManyFields = errors.New("ami: too many fields in message")
	ErrMalformedLine = errors.New("ami: malformed line")
	ErrInvalidBanner = errors.New("ami: invalid banner")
	ErrInvalidField  = errors.New("ami: invalid field")
)

// Default limits of a Reader. They are an estimate: the lines of Asterisk
// 20–22 events and responses are short "Key: Value" pairs, so the defaults
// leave room for long Variable or Output values while keeping a hostile
// peer from growing one message without bound. One message takes at most
// about MaxLineLength × MaxFields bytes, 16 MiB with the defaults.
const (
	DefaultMaxLineLength = 16 << 10
	DefaultMaxFields     = 1024
)

// BannerPrefix starts the line that Asterisk sends once on connect, for
// example "Asterisk Call Manager/11.0.0" (Asterisk 22).
const BannerPrefix = "Asterisk Call Manager/"

// Limits bounds what a Reader accepts. A zero field takes its default.
type Limits struct {
	// MaxLineLength is the maximum length of one line in bytes, without
	// its line end. Default DefaultMaxLineLength.
	MaxLineLength int
	// MaxFields is the maximum number of lines in one message.
	// Default DefaultMaxFields.
	MaxFields int
}

func (l Limits) withDefaults() Limits {
	if l.MaxLineLength <= 0 {
		l.MaxLineLength = DefaultMaxLineLength
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	return l
}

// Reader reads AMI messages from a byte stream. It accepts lines ended by
// CRLF or by a bare LF, as Asterisk's own parser does, and skips blank
// lines between messages.
//
// After ErrMalformedLine the Reader has skipped the rest of that message
// and can go on. Any other error is permanent: the stream position is lost,
// so every later call returns the same error.
type Reader struct {
	br     *bufio.Reader
	limits Limits
	lineNo int
	err    error

	// buf and spans collect the keys and values of the message being read,
	// so that ReadMessage allocates one string for all of them.
	buf   []byte
	spans []fieldSpan
}

// fieldSpan locates one field in Reader.buf: the key is
// buf[keyStart:keyEnd] and the value follows up to valueEnd.
type fieldSpan struct {
	keyStart, keyEnd, valueEnd int
}

// NewReader returns a Reader on r with the given limits.
func NewReader(r io.Reader, limits Limits) *Reader {
	limits = limits.withDefaults()
	// The buffer holds a whole line with its CRLF, so ReadSlice reports a
	// longer line as bufio.ErrBufferFull without allocating.
	return &Reader{br: bufio.NewReaderSize(r, limits.MaxLineLength+2), limits: limits}
}

// ReadBanner reads the banner line that Asterisk sends before anything else
// and returns the AMI version in it, for example "11.0.0".
func (r *Reader) ReadBanner() (string, error) {
	if r.err != nil {
		return "", r.err
	}

	line, err := r.readLine()
	if err != nil {
		return "", r.fail(err)
	}

	version, ok := strings.CutPrefix(string(line), BannerPrefix)
	if !ok {
		return "", r.fail(fmt.Errorf("%w: %q does not start with %q", ErrInvalidBanner, truncate(line), BannerPrefix))
	}
	return version, nil
}

// ReadMessage reads the next message. It returns io.EOF when the stream
// ends between messages and io.ErrUnexpectedEOF when it ends inside one.
// The keys and values of one message are substrings of one string, so a
// kept value keeps the whole message text in memory.
func (r *Reader) ReadMessage() (Message, error) {
	if r.err != nil {
		return Message{}, r.err
	}

	r.buf, r.spans = r.buf[:0], r.spans[:0]
	var (
		lines     int
		malformed error
	)
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && lines > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Message{}, r.fail(err)
		}

		if len(line) == 0 {
			if lines == 0 {
				continue
			}
			break
		}

		lines++
		if lines > r.limits.MaxFields {
			return Message{}, r.fail(fmt.Errorf("%w: more than %d lines in the message ending at line %d", ErrTooManyFields, r.limits.MaxFields, r.lineNo))
		}
		if malformed != nil {
			continue
		}

		key, value, err := splitField(line)
		if err != nil {
			malformed = fmt.Errorf("%w: line %d: %w", ErrMalformedLine, r.lineNo, err)
			continue
		}
		start := len(r.buf)
		r.buf = append(r.buf, key...)
		r.buf = append(r.buf, value...)
		r.spans = append(r.spans, fieldSpan{keyStart: start, keyEnd: start + len(key), valueEnd: len(r.buf)})
	}

	if malformed != nil {
		return Message{}, malformed
	}
	return r.buildMessage(), nil
}

func (r *Reader) buildMessage() Message {
	text := string(r.buf)
	fields := make([]Field, len(r.spans))
	for i, span := range r.spans {
		fields[i] = Field{Key: text[span.keyStart:span.keyEnd], Value: text[span.keyEnd:span.valueEnd]}
	}
	return Message{Fields: fields}
}

// readLine returns the next line without its line end. The slice is valid
// until the next read.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrLineTooLong, r.lineNo+1, r.limits.MaxLineLength)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}

	r.lineNo++
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > r.limits.MaxLineLength {
		return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrLineTooLong, r.lineNo, r.limits.MaxLineLength)
	}
	return line, nil
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// splitField splits "Key: Value" at the first colon. It drops the one space
// that Asterisk writes after the colon and keeps any further spaces, which
// matter in the Output lines of a Command response.
func splitField(line []byte) (key, value []byte, err error) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return nil, nil, fmt.Errorf("no colon in %q", truncate(line))
	}
	if i == 0 {
		return nil, nil, fmt.Errorf("empty key in %q", truncate(line))
	}

	value = line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return line[:i], value, nil
}

// ParseMessages parses every message in data. It stops at the first error
// and returns the messages read before it. A stream that ends inside a
// message gives io.ErrUnexpectedEOF.
func ParseMessages(data []byte, limits Limits) ([]Message, error) {
	r := NewReader(bytes.NewReader(data), limits)
	var msgs []Message
	for {
		msg, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, msg)
	}
}

// Encode returns m in wire format: "Key: Value\r\n" per field and a blank
// line at the end.
func (m Message) Encode() ([]byte, error) {
	return m.AppendEncoded(nil)
}

// AppendEncoded appends m in wire format to dst. It rejects an empty
// message, an empty key, a key with a colon, and a key or value with CR or
// LF, because those would split the message or inject a field. The error
// wraps ErrInvalidField and names the key.
func (m Message) AppendEncoded(dst []byte) ([]byte, error) {
	if len(m.Fields) == 0 {
		return dst, fmt.Errorf("%w: message has no fields", ErrInvalidField)
	}

	for _, f := range m.Fields {
		if err := ValidateField(f.Key, f.Value); err != nil {
			return dst, err
		}
	}

	for _, f := range m.Fields {
		dst = append(dst, f.Key...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...), nil
}

// ValidateField returns an error wrapping ErrInvalidField when key or value
// cannot be sent as one AMI line.
func ValidateField(key, value string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidField)
	case strings.ContainsAny(key, "\r\n"):
		return fmt.Errorf("%w %q: key contains CR or LF", ErrInvalidField, key)
	case strings.Contains(key, ":"):
		return fmt.Errorf("%w %q: key contains a colon", ErrInvalidField, key)
	case strings.ContainsAny(value, "\r\n"):
		return fmt.Errorf("%w %q: value contains CR or LF", ErrInvalidField, key)
	}
	return nil
}

// truncate shortens a line quoted in an error message.
func truncate(line []byte) string {
	const maxQuoted = 64
	if len(line) > maxQuoted {
		return string(line[:maxQuoted]) + "..."
	}
	return string(line)
}
