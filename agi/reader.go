package agi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// reader reads the header and the responses from a FastAGI stream, one
// line at a time, with the same parsers as ParseHeader and ParseResponse.
type reader struct {
	br      *bufio.Reader
	maxLine int
	// hangups counts the HANGUP lines skipped so far.
	hangups int
}

// newReader returns a reader that rejects lines longer than maxLine bytes,
// not counting the line end.
func newReader(r io.Reader, maxLine int) *reader {
	// The buffer holds a whole line and its "\n", so ReadSlice fails with
	// bufio.ErrBufferFull on a longer line instead of growing.
	return &reader{br: bufio.NewReaderSize(r, maxLine+1), maxLine: maxLine}
}

// readLine returns the next line without its line end. A stream that ends
// inside a line gives io.ErrUnexpectedEOF; one that ends between lines
// gives io.EOF.
func (r *reader) readLine() (string, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
		return trimCR(string(line[:len(line)-1])), nil
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("%w: no line end within %d bytes", ErrLineTooLong, r.maxLine)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return "", io.ErrUnexpectedEOF
	default:
		return "", err
	}
}

// readHeader reads the header up to its blank line.
func (r *reader) readHeader() (Header, error) {
	var p headerParser
	for {
		line, err := r.readLine()
		if err != nil {
			return Header{}, fmt.Errorf("read AGI header: %w", err)
		}
		done, err := p.line(line)
		if err != nil {
			return Header{}, err
		}
		if done {
			return p.h, nil
		}
	}
}

// readResponse reads the response to one command, skipping HANGUP lines
// before it.
func (r *reader) readResponse() (Response, error) {
	var p responseParser
	defer func() { r.hangups += p.hangups }()
	for {
		line, err := r.readLine()
		if err != nil {
			return Response{}, fmt.Errorf("read AGI response: %w", err)
		}
		done, err := p.line(line)
		if err != nil {
			return Response{}, err
		}
		if done {
			return p.resp, nil
		}
	}
}
