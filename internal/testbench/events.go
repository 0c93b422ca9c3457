package testbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// maxBufferedEvents bounds the events an EventListener keeps, because every
// call on the shared Asterisk produces events. Past the bound the oldest
// events are dropped.
const maxBufferedEvents = 20000

// EventListener receives every AMI event the bench user may read (classes
// agent, system, call and user) on a connection of its own, from the moment
// ListenEvents returns until the test ends.
type EventListener struct {
	conn *amiConn
	done chan struct{}

	mu      sync.Mutex
	events  []map[string]string
	dropped int
	// changed is closed and replaced whenever an event arrives or the
	// reader stops, to wake WaitEvent.
	changed chan struct{}
	readErr error
}

// ListenEvents logs in as the bench user with events on and buffers every
// event until the test ends. Start it before the action whose events the
// test waits for, such as Originate.
func (b *Bench) ListenEvents(t testing.TB) *EventListener {
	t.Helper()

	conn, err := dialAMI(b.AMIAddr, b.AMIBenchUser, b.AMIBenchSecret, true)
	if err != nil {
		t.Fatalf("ListenEvents: %v", err)
		return nil
	}
	l := &EventListener{conn: conn, done: make(chan struct{}), changed: make(chan struct{})}
	go l.read()
	t.Cleanup(l.close)
	return l
}

func (l *EventListener) read() {
	defer close(l.done)
	// Clear the login deadline, because events may be minutes apart.
	if err := l.conn.conn.SetDeadline(noDeadline); err != nil {
		l.stop(err)
		return
	}
	for {
		event, err := readAMIMessage(l.conn.reader)
		if err != nil {
			l.stop(err)
			return
		}
		if _, isEvent := event["Event"]; isEvent {
			l.add(event)
		}
	}
}

func (l *EventListener) add(event map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if len(l.events) == maxBufferedEvents {
		l.events = l.events[1:]
		l.dropped++
	}
	l.events = append(l.events, event)
	l.notifyLocked()
}

func (l *EventListener) stop(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.readErr = err
	l.notifyLocked()
}

func (l *EventListener) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *EventListener) close() {
	l.conn.close()
	<-l.done
}

// WaitEvent returns the first buffered event for which match returns true,
// waiting for one until ctx ends, and removes it from the buffer so that the
// next call returns the next such event. Events arrive as header maps such
// as {"Event": "UserEvent", "UserEvent": "AgentState", ...}; match must not
// modify them. WaitEvent fails the test when ctx ends first or the AMI
// connection drops.
func (l *EventListener) WaitEvent(t testing.TB, ctx context.Context, match func(map[string]string) bool) map[string]string {
	t.Helper()

	for {
		event, changed, state := l.take(match)
		if event != nil {
			return event
		}
		if state.readErr != nil {
			t.Fatalf("WaitEvent: AMI event connection closed: %v (%s)", state.readErr, state)
			return nil
		}

		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("WaitEvent: no matching event: %v (%s)", context.Cause(ctx), l.state())
			return nil
		}
	}
}

// Events returns a copy of the buffered events that no WaitEvent has taken,
// oldest first, so a test can check that some event did not happen.
func (l *EventListener) Events() []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// take removes and returns the first event that matches. Without one it
// returns the channel that is closed on the next change, and the listener
// state for error messages.
func (l *EventListener) take(match func(map[string]string) bool) (map[string]string, <-chan struct{}, listenerState) {
	l.mu.Lock()
	defer l.mu.Unlock()

	for i, event := range l.events {
		if match(event) {
			l.events = append(l.events[:i], l.events[i+1:]...)
			return event, nil, listenerState{}
		}
	}
	return nil, l.changed, l.stateLocked()
}

// listenerState describes the buffer for failure messages.
type listenerState struct {
	buffered  int
	dropped   int
	lastNames []string
	readErr   error
}

func (s listenerState) String() string {
	return fmt.Sprintf("%d events buffered, %d dropped, last: %v", s.buffered, s.dropped, s.lastNames)
}

func (l *EventListener) state() listenerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

func (l *EventListener) stateLocked() listenerState {
	state := listenerState{buffered: len(l.events), dropped: l.dropped, readErr: l.readErr}
	for _, event := range l.events[max(0, len(l.events)-10):] {
		state.lastNames = append(state.lastNames, event["Event"])
	}
	return state
}
