package testbench

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queueLogPath is the path of queue_log inside the chroot, as set by
// logger.conf and asterisk.conf of test/asterisk/etc.
const queueLogPath = "var/log/asterisk/queue_log"

var errMalformedQueueLog = errors.New("malformed queue_log line")

// QueueLogLine is one queue_log line:
// "epoch|callid|queuename|agent|event|data...".
type QueueLogLine struct {
	Time   time.Time
	CallID string // channel uniqueid, or MANAGER, CLI, NONE
	Queue  string // queue name, or NONE
	Agent  string // member interface or name, or NONE
	Event  string // ADDMEMBER, PAUSE, CONNECT, ...
	// Data holds the fields after Event as written. Asterisk ends every line
	// with "|", so an event without data has one empty field.
	Data []string
}

// QueueLogCursor marks a position in the sandbox's queue_log file.
type QueueLogCursor struct {
	path   string
	offset int64
}

// QueueLog returns a cursor at the current end of queue_log, so that
// Lines returns only what Asterisk writes afterwards.
func (b *Bench) QueueLog(t testing.TB) QueueLogCursor {
	t.Helper()

	cursor := QueueLogCursor{path: filepath.Join(b.SandboxRoot, queueLogPath)}
	info, err := os.Stat(cursor.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cursor
	case err != nil:
		t.Fatalf("QueueLog: %v", err)
		return cursor
	}
	cursor.offset = info.Size()
	return cursor
}

// Lines returns the complete lines appended to queue_log since the cursor
// was taken, on each call again from that position. Asterisk 22 flushes each
// line as it logs it, and writes the line of a queue action (QueueAdd,
// QueuePause...) before it sends the action's response.
func (c QueueLogCursor) Lines(t testing.TB) []QueueLogLine {
	t.Helper()

	data, err := c.read()
	if err != nil {
		t.Fatalf("queue_log: %v", err)
		return nil
	}

	complete := data[:strings.LastIndexByte(data, '\n')+1]
	var lines []QueueLogLine
	for text := range strings.Lines(complete) {
		line, err := parseQueueLogLine(strings.TrimSuffix(text, "\n"))
		if err != nil {
			t.Fatalf("queue_log %s: %v", c.path, err)
			return nil
		}
		lines = append(lines, line)
	}
	return lines
}

func (c QueueLogCursor) read() (string, error) {
	file, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) && c.offset == 0 {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer file.Close()

	info, err := file.Stat()
	if err != nil {
		return "", err
	}
	if info.Size() < c.offset {
		return "", fmt.Errorf("%s shrank from %d to %d bytes since the cursor was taken; the sandbox was restarted", c.path, c.offset, info.Size())
	}

	data, err := io.ReadAll(io.NewSectionReader(file, c.offset, info.Size()-c.offset))
	return string(data), err
}

// parseQueueLogLine splits one queue_log line without its newline.
func parseQueueLogLine(text string) (QueueLogLine, error) {
	fields := strings.Split(text, "|")
	if len(fields) < 5 {
		return QueueLogLine{}, fmt.Errorf("%w: %d fields, want at least 5: %q", errMalformedQueueLog, len(fields), text)
	}
	epoch, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return QueueLogLine{}, fmt.Errorf("%w: time %q is not epoch seconds: %q", errMalformedQueueLog, fields[0], text)
	}
	return QueueLogLine{
		Time:   time.Unix(epoch, 0),
		CallID: fields[1],
		Queue:  fields[2],
		Agent:  fields[3],
		Event:  fields[4],
		Data:   fields[5:],
	}, nil
}
