// Package backoff computes the waits between reconnect attempts of the
// AMI client, the ARI event stream and the NATS outbox flusher, and
// reports whether a retry's error repeats the last one, so each distinct
// error is logged once.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential from the minimum, capped
// at the maximum,
// with full jitter (a uniform delay between zero and the ceiling), so
// that several clients restarted together do not dial in step. The zero
// value is not usable; use New.
type Backoff struct {
	min, max time.Duration
	attempt  int
	// jitter returns a value in [0, n]. Tests replace it.
	jitter func(n int64) int64
}

// New returns a Backoff from minDelay to maxDelay.
func New(minDelay, maxDelay time.Duration) *Backoff {
	return &Backoff{
		min:    minDelay,
		max:    maxDelay,
		jitter: func(n int64) int64 { return rand.Int64N(n + 1) },
	}
}

// Ceiling returns the bound of the next delay: the minimum times
// 2^attempt, capped at the maximum.
func (b *Backoff) Ceiling() time.Duration {
	d := b.min
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// Next returns the delay before the next attempt and advances the attempt.
func (b *Backoff) Next() time.Duration {
	d := time.Duration(b.jitter(int64(b.Ceiling())))
	b.attempt++
	return d
}

// Delay returns the delay before retry number attempt (1 for the first)
// of a loop that counts its own attempts, as New(minDelay, maxDelay)
// returns it for that attempt.
func Delay(minDelay, maxDelay time.Duration, attempt int) time.Duration {
	b := New(minDelay, maxDelay)
	b.attempt = max(attempt-1, 0)
	return b.Next()
}

// Reset starts again from the minimum, after a success.
func (b *Backoff) Reset() {
	b.attempt = 0
}

// Sleep waits for d, or until ctx ends. It reports whether the whole wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Repeats records the last error of a retry loop, so that a failure is
// logged once at Warn and its repetitions at Debug. A retry is logged
// again when its error changes.
type Repeats struct {
	last string
}

// Seen records err and reports whether it has the same text as the error
// recorded before it.
func (r *Repeats) Seen(err error) bool {
	text := err.Error()
	same := text == r.last
	r.last = text
	return same
}

// Reset clears the last error, after a success.
func (r *Repeats) Reset() {
	r.last = ""
}
