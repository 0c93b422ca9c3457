package agent

import (
	"sync"
	"time"
)

// echoTTL is how long an expected echo of agentd's own action is kept.
// Asterisk sends the member events of an action within milliseconds; the
// margin covers a slow event dispatch.
const echoTTL = 10 * time.Second

// echoKind is the kind of queue member event an action causes.
type echoKind uint8

const (
	echoPause echoKind = iota + 1
	echoAdd
	echoRemove
)

// echoKey identifies an expected member event. queue is empty for pause
// events, because QueuePause without Queue acts on every queue.
type echoKey struct {
	iface  string
	kind   echoKind
	queue  string
	paused bool
}

// echoes counts the member events that agentd's own actions will cause,
// so they are not taken for changes made outside agentd. Each expected
// event is consumed once, whatever the order of events and later actions.
type echoes struct {
	mu      sync.Mutex
	pending map[echoKey][]time.Time // expiry of each expected event
	now     func() time.Time
}

func newEchoes(now func() time.Time) *echoes {
	return &echoes{pending: map[echoKey][]time.Time{}, now: now}
}

// expect records n events of key.
func (e *echoes) expect(key echoKey, n int) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	expiry := e.now().Add(echoTTL)
	for range n {
		e.pending[key] = append(e.pending[key], expiry)
	}
}

// consume reports whether an event of key was expected, and forgets one.
func (e *echoes) consume(key echoKey) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.pending[key]
	now := e.now()
	for len(list) > 0 && now.After(list[0]) {
		list = list[1:]
	}
	if len(list) == 0 {
		delete(e.pending, key)
		return false
	}
	if len(list) == 1 {
		delete(e.pending, key)
	} else {
		e.pending[key] = list[1:]
	}
	return true
}

// forget drops the expectations of key, for an action that failed.
func (e *echoes) forget(key echoKey, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.pending[key]
	if n >= len(list) {
		delete(e.pending, key)
		return
	}
	e.pending[key] = list[:len(list)-n]
}
