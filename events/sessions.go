package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/backoff"
)

// Sessions returns the session of every agent in the bucket, with changes
// still waiting in the outbox applied over them, sorted by agent id. Of a
// bucket value and an outbox entry, the one with the higher revision wins,
// and the outbox entry on a tie. Sessions waits for NATS until ctx ends,
// then returns an error wrapping agent.ErrStoreUnavailable.
func (s *Store) Sessions(ctx context.Context) ([]agent.Session, error) {
	s.mu.Lock()
	closed := s.closed
	pending := s.outbox.records()
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: %w", agent.ErrStoreUnavailable, ErrClosed)
	}

	kv, err := s.waitReady(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: read sessions from bucket %s: %w", agent.ErrStoreUnavailable, s.cfg.Bucket, err)
	}
	sessions, err := readSessions(ctx, kv, s.cfg.Bucket)
	if err != nil {
		return nil, err
	}
	if err := applyPending(sessions, pending); err != nil {
		return nil, err
	}

	out := make([]agent.Session, 0, len(sessions))
	for _, sess := range sessions {
		out = append(out, sess)
	}
	slices.SortFunc(out, func(a, b agent.Session) int { return strings.Compare(a.AgentID, b.AgentID) })
	return out, nil
}

// waitReady returns the bucket once the store is connected and set up.
func (s *Store) waitReady(ctx context.Context) (jetstream.KeyValue, error) {
	lastErr := errNotConnected
	for attempt := 1; ; attempt++ {
		changed := s.status.wait()
		wait := backoff.Delay(flushRetryMin, s.cfg.Conn.ReconnectWaitMax, attempt)
		if s.nc.IsConnected() {
			kv, err := s.ensureSetup(ctx)
			if err == nil {
				return kv, nil
			}
			lastErr = err
		}
		if errors.Is(lastErr, errNotConnected) {
			wait = s.cfg.Conn.ReconnectWaitMax
		}

		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), lastErr)
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// readSessions reads the latest value of every key in the bucket.
func readSessions(ctx context.Context, kv jetstream.KeyValue, bucket string) (map[string]agent.Session, error) {
	watcher, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("%w: watch bucket %s: %w", agent.ErrStoreUnavailable, bucket, err)
	}
	defer func() { _ = watcher.Stop() }()

	sessions := make(map[string]agent.Session)
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: read bucket %s: %w", agent.ErrStoreUnavailable, bucket, ctx.Err())
		case entry := <-watcher.Updates():
			if entry == nil {
				return sessions, nil
			}
			sess, err := decodeSession(entry.Key(), entry.Value())
			if err != nil {
				return nil, fmt.Errorf("bucket %s: %w; fix or delete the key with: nats kv del %s %s",
					bucket, err, bucket, entry.Key())
			}
			sessions[entry.Key()] = sess
		}
	}
}

// applyPending applies outbox records, oldest first, over sessions.
func applyPending(sessions map[string]agent.Session, pending []record) error {
	for _, rec := range pending {
		sess, err := decodeSession(rec.AgentID, rec.Session)
		if err != nil {
			return fmt.Errorf("outbox entry %d: %w", rec.Seq, err)
		}
		if stored, ok := sessions[rec.AgentID]; ok && stored.Revision > sess.Revision {
			continue
		}
		sessions[rec.AgentID] = sess
	}
	return nil
}

func decodeSession(agentID string, value []byte) (agent.Session, error) {
	var sess agent.Session
	if err := json.Unmarshal(value, &sess); err != nil {
		return agent.Session{}, fmt.Errorf("session of agent %s is not valid JSON: %w", agentID, err)
	}
	if sess.AgentID == "" {
		sess.AgentID = agentID
	}
	if sess.AgentID != agentID {
		return agent.Session{}, fmt.Errorf("session stored under agent %s names agent %s", agentID, sess.AgentID)
	}
	return sess, nil
}
