package events

import (
	"errors"
	"time"

	"github.com/contactcenter/agentd/internal/backoff"
)

// flushRetryMin is the first wait after a failed attempt to store an outbox
// record. The wait doubles up to Config.Conn.ReconnectWaitMax.
const flushRetryMin = 100 * time.Millisecond

// runFlusher stores the outbox records in NATS, oldest first, and keeps the
// stream and bucket in place after every reconnect. It returns when the
// store is closing and the outbox is empty, or when flushCtx ends.
func (s *Store) runFlusher() {
	defer close(s.flusherDone)
	var attempt int
	var repeats backoff.Repeats
	for {
		rec, pending := s.outboxHead()
		if !pending && s.isStopping() {
			return
		}

		err := s.flushStep(rec, pending)
		if err == nil {
			attempt = 0
			repeats.Reset()
			if !pending && !s.waitForWork(0, true) {
				return
			}
			continue
		}

		wait := s.cfg.Conn.ReconnectWaitMax
		if !errors.Is(err, errNotConnected) {
			// The connection handlers log disconnects, and other errors
			// are logged here when they change.
			attempt++
			wait = backoff.Delay(flushRetryMin, s.cfg.Conn.ReconnectWaitMax, attempt)
			if !repeats.Seen(err) {
				s.log.Warn("NATS not ready for changes; retrying",
					"entries", s.Stats().OutboxDepth, "retry_in", wait, "err", err)
			}
		}
		if !s.waitForWork(wait, !pending) {
			return
		}
	}
}

// flushStep makes the store ready, then stores rec if pending.
func (s *Store) flushStep(rec record, pending bool) error {
	if !s.status.isUp() || pending {
		if !s.nc.IsConnected() {
			return errNotConnected
		}
		if _, err := s.ensureSetup(s.flushCtx); err != nil {
			return err
		}
	}
	if !pending {
		return nil
	}
	if err := s.storeRecord(s.flushCtx, rec); err != nil {
		return err
	}
	s.ackRecord(rec)
	return nil
}

func (s *Store) outboxHead() (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outbox.head()
}

func (s *Store) ackRecord(rec record) {
	s.mu.Lock()
	err := s.outbox.ack(rec.Seq)
	close(s.ackNotify)
	s.ackNotify = make(chan struct{})
	entries, _ := s.outbox.depth()
	drained := entries == 0 && s.backlog
	if drained {
		s.backlog = false
	}
	s.mu.Unlock()

	if err != nil {
		s.log.Error("recording a stored outbox entry failed; it may be stored again after a restart",
			"agent_id", rec.AgentID, "event_id", rec.EventID, "err", err)
	}
	if drained {
		s.log.Info("outbox flushed; changes reach NATS at once again")
	}
}

func (s *Store) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// waitForWork waits for a wake-up, for d when d > 0, and, if
// stopWhenIdle, for Close. It returns false once flushCtx ends.
func (s *Store) waitForWork(d time.Duration, stopWhenIdle bool) bool {
	var timeout <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	var stopping <-chan struct{}
	if stopWhenIdle {
		stopping = s.stopping
	}
	select {
	case <-s.wake:
	case <-timeout:
	case <-stopping:
	case <-s.flushCtx.Done():
		return false
	}
	return true
}
