package ami

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
)

// ActionSender sends AMI actions and waits for their responses. Client and
// Pool implement it.
type ActionSender interface {
	Action(ctx context.Context, msg Message) (Message, error)
	ActionList(ctx context.Context, msg Message) (Message, []Message, error)
}

var (
	_ ActionSender = (*Client)(nil)
	_ ActionSender = (*Pool)(nil)
)

// Pool spreads actions over several AMI connections to one Asterisk.
// Asterisk serves each AMI session on its own thread, so actions sent at
// the same time wait less for each other on several sessions than on one.
//
// A Pool has one event client, which receives the events and serves list
// actions, and action-only clients, which log in with "Events: off". The
// Pool sends actions only while the event client is connected, so that no
// action succeeds while the events it causes cannot arrive. Without the
// event client, an action fails with ErrNotConnected, as on a single
// Client.
type Pool struct {
	events  *Client
	actions []*Client
	// next rotates the action client checked first, so that clients with
	// equally many actions in flight take turns.
	next atomic.Uint64
}

// NewPool returns a Pool of size clients: events and size-1 new action-only
// clients. A size below 1 counts as 1, which sends every action through
// events. The new clients take the Config of events, with Events "off", no
// OnEvent or OnConnect, and a logger with the attribute conn=action-2,
// conn=action-3 and so on. Pool.Run runs events too, so do not call
// events.Run.
func NewPool(events *Client, size int) *Pool {
	p := &Pool{events: events}
	for i := 2; i <= size; i++ {
		cfg := events.cfg
		cfg.Events = "off"
		cfg.OnEvent = nil
		cfg.OnConnect = nil
		// Without OnEvent no event is queued, so one slot is enough.
		cfg.EventQueueSize = 1
		cfg.Logger = events.cfg.Logger.With("conn", "action-"+strconv.Itoa(i))
		p.actions = append(p.actions, New(cfg))
	}
	return p
}

// Size returns the number of clients, the event client included.
func (p *Pool) Size() int {
	return 1 + len(p.actions)
}

// ConnectedActionClients returns how many action-only clients are logged
// in.
func (p *Pool) ConnectedActionClients() int {
	n := 0
	for _, c := range p.actions {
		if c.Connected() {
			n++
		}
	}
	return n
}

// Run runs every client, as Client.Run does, until ctx ends or Close is
// called, and then returns nil. When the Run of one client returns an
// error, such as ErrInvalidConfig, Run stops the other clients and returns
// the first error in client order, the event client first.
func (p *Pool) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	clients := p.clients()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			if errs[i] = c.Run(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()

	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close closes every client and waits for Run to return. It is safe to
// call more than once and before Run.
func (p *Pool) Close() error {
	var errs []error
	for _, c := range p.clients() {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Action sends msg through the connected client with the fewest actions in
// flight, and returns what Client.Action returns. Action-only clients that
// are down are skipped. While the event client is down, Action returns its
// ErrNotConnected.
//
// A tie goes to an action-only client, because the Asterisk thread that
// serves the event session also writes that session's events
// (process_events in main/manager.c).
func (p *Pool) Action(ctx context.Context, msg Message) (Message, error) {
	return p.pick().Action(ctx, msg)
}

// ActionList sends msg through the event client, so that a list such as
// QueueStatus arrives on the connection whose events the caller follows.
// It returns what Client.ActionList returns.
func (p *Pool) ActionList(ctx context.Context, msg Message) (Message, []Message, error) {
	return p.events.ActionList(ctx, msg)
}

// pick returns the client for the next action.
func (p *Pool) pick() *Client {
	if len(p.actions) == 0 || !p.events.Connected() {
		return p.events
	}

	var best *Client
	var bestLoad int64
	first := int(p.next.Add(1) % uint64(len(p.actions)))
	for i := range p.actions {
		c := p.actions[(first+i)%len(p.actions)]
		if !c.Connected() {
			continue
		}
		if load := c.inFlight.Load(); best == nil || load < bestLoad {
			best, bestLoad = c, load
		}
	}
	if best == nil || p.events.inFlight.Load() < bestLoad {
		return p.events
	}
	return best
}

func (p *Pool) clients() []*Client {
	return append([]*Client{p.events}, p.actions...)
}
