package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// repeatWindow is how long an identical warning or error is suppressed
// after it was logged.
const repeatWindow = 10 * time.Second

// maxRepeatKeys bounds the records remembered; past it the oldest window
// is forgotten early, which only lets a repeat through sooner.
const maxRepeatKeys = 4096

// rateLimitHandler drops warnings and errors identical to one logged
// within repeatWindow, so a failing dependency cannot flood the log. The
// next record of the same kind after the window carries "suppressed" with
// the number dropped. Info and debug records always pass.
type rateLimitHandler struct {
	next  slog.Handler
	state *repeatState
}

type repeatState struct {
	mu   sync.Mutex
	seen map[string]*repeat
	now  func() time.Time
}

type repeat struct {
	until      time.Time
	suppressed int
}

func newRateLimitHandler(next slog.Handler, now func() time.Time) *rateLimitHandler {
	return &rateLimitHandler{next: next, state: &repeatState{seen: map[string]*repeat{}, now: now}}
}

func (h *rateLimitHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *rateLimitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	suppressed, pass := h.state.check(repeatKey(r))
	if !pass {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &rateLimitHandler{next: h.next.WithAttrs(attrs), state: h.state}
}

func (h *rateLimitHandler) WithGroup(name string) slog.Handler {
	return &rateLimitHandler{next: h.next.WithGroup(name), state: h.state}
}

// volatileKeys are attributes that differ between otherwise identical
// records, such as one per HTTP request; they are left out of the key.
var volatileKeys = map[string]bool{
	"request_id": true, "duration": true, "remote_addr": true, "action_id": true, "retry_in": true, "since": true,
}

// repeatKey identifies a record by level, message and attributes. Records
// from loggers with different logger attributes (components) may share a
// key, which only makes the limit stricter.
func repeatKey(r slog.Record) string {
	key := r.Level.String() + "|" + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if !volatileKeys[a.Key] {
			key += "|" + a.Key + "=" + a.Value.String()
		}
		return true
	})
	return key
}

// check reports whether a record with key may be logged now, and how
// many identical records were dropped since the last one logged.
func (s *repeatState) check(key string) (suppressed int, pass bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if rep, ok := s.seen[key]; ok && now.Before(rep.until) {
		rep.suppressed++
		return 0, false
	} else if ok {
		suppressed = rep.suppressed
	}
	if len(s.seen) >= maxRepeatKeys {
		for k, rep := range s.seen {
			if now.After(rep.until) || len(s.seen) >= maxRepeatKeys {
				delete(s.seen, k)
			}
		}
	}
	s.seen[key] = &repeat{until: now.Add(repeatWindow)}
	return suppressed, true
}
