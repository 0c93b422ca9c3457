package ami

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// logoffTimeout bounds the write of the Logoff action on shutdown.
const logoffTimeout = time.Second

// conn is one TCP connection to Asterisk: a read loop that routes
// responses to the actions waiting for them, and a write lock.
type conn struct {
	client *Client
	nc     net.Conn
	r      *Reader
	// writeLock is a one-slot semaphore rather than a mutex, so that a
	// writer can give up waiting when its context ends.
	writeLock chan struct{}
	done      chan struct{} // closed by close
	closeOnce sync.Once

	mu        sync.Mutex
	pending   map[string]*pendingAction // by ActionID
	closeErr  error
	malformed bool // a malformed message was logged on this connection
}

type pendingAction struct {
	list     bool
	resp     *Message // response of a list action, stored until Complete
	items    []Message
	complete bool
	// abandoned marks a list action whose caller stopped waiting. It stays
	// registered until its list ends, so that the rest of the list is
	// dropped instead of reaching OnEvent.
	abandoned bool
	result    chan actionResult // buffered, receives once
}

type actionResult struct {
	resp  Message
	items []Message
}

func newConn(c *Client, nc net.Conn) *conn {
	return &conn{
		client:    c,
		nc:        nc,
		r:         NewReader(nc, c.cfg.Limits),
		writeLock: make(chan struct{}, 1),
		done:      make(chan struct{}),
		pending:   make(map[string]*pendingAction),
	}
}

// readBanner reads the banner within timeout, or until ctx ends.
func (cn *conn) readBanner(ctx context.Context, timeout time.Duration) (string, error) {
	stop := context.AfterFunc(ctx, func() { _ = cn.nc.SetReadDeadline(time.Now()) })
	defer stop()

	_ = cn.nc.SetReadDeadline(time.Now().Add(timeout))
	version, err := cn.r.ReadBanner()
	if err != nil {
		return "", fmt.Errorf("read banner: %w", err)
	}
	_ = cn.nc.SetReadDeadline(time.Time{})
	return version, nil
}

// close closes the connection once, making every waiting action fail.
func (cn *conn) close(err error) {
	cn.closeOnce.Do(func() {
		cn.mu.Lock()
		cn.closeErr = err
		cn.mu.Unlock()

		_ = cn.nc.Close()
		close(cn.done)
	})
}

func (cn *conn) err() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.closeErr
}

// do sends msg, which must carry a unique ActionID, and waits for its
// response. For a list action it also collects the events up to the one
// with "EventList: Complete". ctx must have a deadline.
func (cn *conn) do(ctx context.Context, msg Message, list bool) (Message, []Message, error) {
	action, id := msg.Action(), msg.ActionID()
	frame, err := msg.Encode()
	if err != nil {
		return Message{}, nil, err
	}

	p := &pendingAction{list: list, result: make(chan actionResult, 1)}
	if err := cn.register(id, p); err != nil {
		return Message{}, nil, fmt.Errorf("%w: %s (ActionID %s) not sent: %w", ErrNotConnected, action, id, err)
	}
	defer cn.unregister(id, p)

	if err := cn.write(ctx, frame); err != nil {
		return Message{}, nil, cn.writeError(ctx, action, id, err)
	}
	return cn.wait(ctx, p, action, id)
}

func (cn *conn) wait(ctx context.Context, p *pendingAction, action, id string) (Message, []Message, error) {
	select {
	case res := <-p.result:
		return res.resp, res.items, nil
	case <-ctx.Done():
	case <-cn.done:
	}

	// The response may have arrived together with the deadline or the
	// connection end, because the read loop routes it before it closes.
	select {
	case res := <-p.result:
		return res.resp, res.items, nil
	default:
	}

	if ctx.Err() != nil {
		return Message{}, nil, contextError(ctx, action, id)
	}
	return Message{}, nil, fmt.Errorf("%w: connection lost while waiting for the response to %s (ActionID %s), so the outcome of the action is unknown: %w",
		ErrNotConnected, action, id, cn.err())
}

func contextError(ctx context.Context, action, id string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: no response to %s (ActionID %s) before the deadline, so the outcome of the action is unknown: %w",
			ErrTimeout, action, id, ctx.Err())
	}
	return fmt.Errorf("ami: %s (ActionID %s) canceled while waiting for the response, so the outcome of the action is unknown: %w",
		action, id, context.Cause(ctx))
}

func (cn *conn) register(id string, p *pendingAction) error {
	cn.mu.Lock()
	defer cn.mu.Unlock()

	select {
	case <-cn.done:
		return fmt.Errorf("connection closed: %w", cn.closeErr)
	default:
	}
	if _, dup := cn.pending[id]; dup {
		return fmt.Errorf("ActionID %s is already in flight", id)
	}
	cn.pending[id] = p
	return nil
}

// unregister removes a pending action once its caller stops waiting. A
// list action still registered has not ended and stays, marked abandoned.
func (cn *conn) unregister(id string, p *pendingAction) {
	cn.mu.Lock()
	defer cn.mu.Unlock()

	if cn.pending[id] != p {
		return
	}
	if p.list {
		p.abandoned = true
		p.items = nil
		return
	}
	delete(cn.pending, id)
}

// write sends one whole frame. A failed or partial write leaves the stream
// in an unknown state, so it closes the connection.
func (cn *conn) write(ctx context.Context, frame []byte) error {
	select {
	case cn.writeLock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-cn.done:
		return fmt.Errorf("connection closed: %w", cn.err())
	}
	defer func() { <-cn.writeLock }()

	deadline, _ := ctx.Deadline()
	_ = cn.nc.SetWriteDeadline(deadline)
	if _, err := cn.nc.Write(frame); err != nil {
		cn.close(fmt.Errorf("write: %w", err))
		return err
	}
	return nil
}

func (cn *conn) writeError(ctx context.Context, action, id string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %s (ActionID %s) not sent before the deadline: %w", ErrTimeout, action, id, err)
	case ctx.Err() != nil:
		return fmt.Errorf("ami: %s (ActionID %s) canceled before it was sent: %w", action, id, context.Cause(ctx))
	}
	return fmt.Errorf("%w: sending %s (ActionID %s) failed: %w", ErrNotConnected, action, id, err)
}

// logoff sends Logoff, the protocol's way to end a session, without
// waiting for the response. It is a courtesy: Asterisk 22 logs "logged off"
// for a closed connection too. It gives up when another write holds the
// lock.
func (cn *conn) logoff(id string) {
	frame, err := NewAction(ActionLogoff, KeyActionID, id).Encode()
	if err != nil {
		return
	}
	select {
	case cn.writeLock <- struct{}{}:
	default:
		return
	}
	defer func() { <-cn.writeLock }()

	_ = cn.nc.SetWriteDeadline(time.Now().Add(logoffTimeout))
	_, _ = cn.nc.Write(frame)
}

// readLoop reads messages until the connection fails, and routes each one.
func (cn *conn) readLoop() {
	for {
		msg, err := cn.r.ReadMessage()
		if errors.Is(err, ErrMalformedLine) {
			cn.noteMalformed(err)
			continue
		}
		if err != nil {
			cn.close(fmt.Errorf("read: %w", err))
			return
		}
		cn.route(msg)
	}
}

func (cn *conn) noteMalformed(err error) {
	cn.client.stats.malformed.Add(1)

	cn.mu.Lock()
	first := !cn.malformed
	cn.malformed = true
	cn.mu.Unlock()

	if first {
		cn.client.log.Warn("AMI message with a malformed line skipped, later ones on this connection are only counted", "err", err)
	}
}

func (cn *conn) route(msg Message) {
	switch {
	case msg.IsResponse():
		cn.deliverResponse(msg)
	case msg.IsEvent():
		if !cn.deliverListEvent(msg) {
			cn.client.pushEvent(msg)
		}
	default:
		cn.client.log.Debug("AMI message with neither Response nor Event dropped", "action_id", msg.ActionID())
	}
}

func (cn *conn) deliverResponse(msg Message) {
	id := msg.ActionID()

	cn.mu.Lock()
	p := cn.pending[id]
	if p == nil {
		cn.mu.Unlock()
		cn.client.log.Debug("AMI response without a waiting action dropped", "action_id", id)
		return
	}
	if p.list && !p.complete && strings.EqualFold(msg.Get(KeyEventList), EventListStart) {
		p.resp = &msg
		cn.mu.Unlock()
		return
	}
	delete(cn.pending, id)
	cn.mu.Unlock()

	if !p.abandoned {
		p.result <- actionResult{resp: msg, items: p.items}
	}
}

// deliverListEvent adds msg to the list action with its ActionID and
// reports whether there was one.
func (cn *conn) deliverListEvent(msg Message) bool {
	id, ok := msg.Lookup(KeyActionID)
	if !ok {
		return false
	}

	cn.mu.Lock()
	p := cn.pending[id]
	if p == nil || !p.list {
		cn.mu.Unlock()
		return false
	}
	if !strings.EqualFold(msg.Get(KeyEventList), EventListComplete) {
		if !p.abandoned {
			p.items = append(p.items, msg)
		}
		cn.mu.Unlock()
		return true
	}
	p.complete = true
	if p.resp == nil {
		cn.mu.Unlock()
		return true
	}
	delete(cn.pending, id)
	cn.mu.Unlock()

	if !p.abandoned {
		p.result <- actionResult{resp: *p.resp, items: p.items}
	}
	return true
}
