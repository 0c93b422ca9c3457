// Package rawami is a minimal Asterisk Manager Interface client for the
// load generator. It is written apart from the ami package on purpose, so
// that the reference figures of the benchmark do not inherit the costs or
// the faults of the code they are compared with.
//
// A Conn writes any number of actions in one write and matches the
// responses by ActionID, so every action of a batch is in flight at once.
// It does nothing else: no reconnection, no keepalive, no input limits.
package rawami

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Banner starts the first line Asterisk sends on a new AMI connection.
const Banner = "Asterisk Call Manager/"

// ErrClosed is returned for actions that were still waiting when the
// connection ended.
var ErrClosed = errors.New("rawami: connection closed")

// Header is one "Key: Value" line of an action.
type Header struct {
	Key, Value string
}

// Action is an AMI action without its ActionID, which Conn adds.
type Action struct {
	Name    string
	Headers []Header
}

// NewAction returns the action name with the key-value pairs kv.
func NewAction(name string, kv ...string) Action {
	a := Action{Name: name}
	for i := 0; i+1 < len(kv); i += 2 {
		a.Headers = append(a.Headers, Header{kv[i], kv[i+1]})
	}
	return a
}

// Message is one response or event. A key that repeats keeps its first
// value.
type Message map[string]string

// IsError reports whether the message is a "Response: Error".
func (m Message) IsError() bool {
	return strings.EqualFold(m["Response"], "Error")
}

var actionIDs atomic.Uint64

// newActionID returns an ActionID unique in this process, and across
// processes by the PID, so it can be found in the Asterisk log.
func newActionID() string {
	return "agentd-bench-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(actionIDs.Add(1), 10)
}

// Conn is one logged-in AMI session. Send and List may be called from
// several goroutines at once.
type Conn struct {
	nc     net.Conn
	events chan Message

	writeMu sync.Mutex

	mu      sync.Mutex
	waiting map[string]*call
	err     error
	done    chan struct{}
}

// call collects the response of one action and, for a list action, its
// events up to "EventList: Complete".
type call struct {
	list     bool
	response Message
	items    []Message
	done     chan struct{}
}

// Dial connects to addr, reads the banner and logs in with the given event
// mask ("off", "on" or classes such as "user"). Events matching the mask
// are delivered on Events; with "off" only responses arrive.
func Dial(addr, user, secret, events string, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial AMI %s: %w", addr, err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, Banner) {
		nc.Close()
		return nil, fmt.Errorf("read AMI banner from %s: got %q: %w", addr, strings.TrimSpace(line), err)
	}
	_ = nc.SetReadDeadline(time.Time{})

	c := &Conn{nc: nc, events: make(chan Message, 4096), waiting: map[string]*call{}, done: make(chan struct{})}
	go c.readLoop(br)

	login := NewAction("Login", "Username", user, "Secret", secret, "Events", events)
	resp, err := c.Send(timeout, login)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("AMI login as %s: %w", user, err)
	}
	if resp[0].IsError() {
		c.Close()
		return nil, fmt.Errorf("AMI login as %s: %s", user, resp[0]["Message"])
	}
	return c, nil
}

// Events returns the events that are not part of a list response. Events
// that arrive while the buffer of 4096 is full are dropped.
func (c *Conn) Events() <-chan Message {
	return c.events
}

// Send writes every action in one write and waits up to timeout for all
// responses, which it returns in the order of actions. An error response
// is returned as a Message, not as an error.
func (c *Conn) Send(timeout time.Duration, actions ...Action) ([]Message, error) {
	calls, err := c.start(actions, false)
	if err != nil {
		return nil, err
	}
	out := make([]Message, len(calls))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i, cl := range calls {
		if err := c.wait(cl, deadline.C, actions[i].Name); err != nil {
			return nil, err
		}
		out[i] = cl.response
	}
	return out, nil
}

// List sends a list action such as QueueStatus and returns its events,
// without the one that carries "EventList: Complete".
func (c *Conn) List(timeout time.Duration, action Action) ([]Message, error) {
	calls, err := c.start([]Action{action}, true)
	if err != nil {
		return nil, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if err := c.wait(calls[0], deadline.C, action.Name); err != nil {
		return nil, err
	}
	if calls[0].response.IsError() {
		return nil, fmt.Errorf("AMI %s: %s", action.Name, calls[0].response["Message"])
	}
	return calls[0].items, nil
}

// Logoff sends Logoff without waiting for its response. Close ends the
// connection either way.
func (c *Conn) Logoff() {
	frame := encode(NewAction("Logoff"), newActionID())
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(frame)
}

// Close closes the connection. Actions still waiting fail with ErrClosed.
func (c *Conn) Close() {
	_ = c.nc.Close() // the read loop reports the end to waiting actions
}

func (c *Conn) start(actions []Action, list bool) ([]*call, error) {
	var frames []byte
	calls := make([]*call, len(actions))
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	for i, a := range actions {
		id := newActionID()
		calls[i] = &call{list: list, done: make(chan struct{})}
		c.waiting[id] = calls[i]
		frames = append(frames, encode(a, id)...)
	}
	c.mu.Unlock()

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if _, err := c.nc.Write(frames); err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("write %d AMI actions: %w", len(actions), err)
	}
	return calls, nil
}

func (c *Conn) wait(cl *call, deadline <-chan time.Time, name string) error {
	select {
	case <-cl.done:
		return nil
	case <-c.done:
		return fmt.Errorf("AMI %s: %w", name, c.err)
	case <-deadline:
		return fmt.Errorf("AMI %s: no response before the deadline", name)
	}
}

func encode(a Action, id string) []byte {
	var b strings.Builder
	b.WriteString("Action: " + a.Name + "\r\nActionID: " + id + "\r\n")
	for _, h := range a.Headers {
		b.WriteString(h.Key + ": " + h.Value + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func (c *Conn) readLoop(br *bufio.Reader) {
	for {
		msg, err := ReadMessage(br)
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("%w: %w", ErrClosed, err)
			c.mu.Unlock()
			close(c.done)
			close(c.events)
			return
		}
		c.route(msg)
	}
}

func (c *Conn) route(msg Message) {
	id, hasID := msg["ActionID"]
	c.mu.Lock()
	cl := c.waiting[id]
	c.mu.Unlock()
	if !hasID || cl == nil {
		if _, isEvent := msg["Event"]; isEvent {
			select {
			case c.events <- msg:
			default:
			}
		}
		return
	}

	_, isResponse := msg["Response"]
	switch {
	case isResponse && cl.list && strings.EqualFold(msg["EventList"], "start"):
		cl.response = msg // the list events follow
	case isResponse:
		cl.response = msg
		c.finish(id, cl)
	case strings.EqualFold(msg["EventList"], "Complete"):
		c.finish(id, cl)
	default:
		cl.items = append(cl.items, msg)
	}
}

func (c *Conn) finish(id string, cl *call) {
	c.mu.Lock()
	delete(c.waiting, id)
	c.mu.Unlock()
	close(cl.done)
}

// ReadMessage reads one message: "Key: Value" lines up to an empty line.
// Empty lines before a message are skipped. Lines end with CRLF or LF.
func ReadMessage(br *bufio.Reader) (Message, error) {
	msg := Message{}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = trimLineEnd(line)
		if len(line) == 0 {
			if len(msg) == 0 {
				continue
			}
			return msg, nil
		}
		key, value, found := strings.Cut(string(line), ":")
		if !found {
			continue // such as the "--END COMMAND--" of a CLI command
		}
		if _, seen := msg[key]; !seen {
			msg[key] = strings.TrimPrefix(value, " ")
		}
	}
}

func trimLineEnd(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}
