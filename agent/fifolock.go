package agent

import (
	"context"
	"sync"
)

// fifoLock is a mutex that hands itself to waiters in arrival order, so
// requests for one agent are applied in the order they came in. sync.Mutex
// gives no such promise.
type fifoLock struct {
	mu      sync.Mutex
	held    bool
	waiters []chan struct{}
}

// Lock waits for the lock. It returns ctx.Err() if ctx ends first, and the
// caller then does not hold the lock.
func (l *fifoLock) Lock(ctx context.Context) error {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	l.waiters = append(l.waiters, ready)
	l.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		l.abandon(ready)
		return ctx.Err()
	}
}

// abandon removes a waiter whose context ended. If the lock was handed to
// it in the meantime, it passes the lock on.
func (l *fifoLock) abandon(ready chan struct{}) {
	l.mu.Lock()
	for i, w := range l.waiters {
		if w == ready {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			l.mu.Unlock()
			return
		}
	}
	l.mu.Unlock()
	// Not in the list: Unlock already closed ready for us.
	l.Unlock()
}

// Unlock hands the lock to the oldest waiter, or frees it.
func (l *fifoLock) Unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.waiters) == 0 {
		l.held = false
		return
	}
	next := l.waiters[0]
	l.waiters[0] = nil
	l.waiters = l.waiters[1:]
	close(next)
}

// load returns how many callers hold or wait for the lock.
func (l *fifoLock) load() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return 0
	}
	return 1 + len(l.waiters)
}
