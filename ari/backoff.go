package ari

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnect delays: exponential from initial, capped at
// max, with full jitter (a uniform delay between zero and the ceiling), so
// that several clients restarted together do not dial in step.
type backoff struct {
	initial time.Duration
	max     time.Duration
	attempt int
	// jitter returns a value in [0, n]. Tests replace it.
	jitter func(n int64) int64
}

func newBackoff(initial, maxDelay time.Duration) *backoff {
	return &backoff{
		initial: initial,
		max:     maxDelay,
		jitter:  func(n int64) int64 { return rand.Int64N(n + 1) },
	}
}

// ceiling returns initial·2^attempt, capped at max.
func (b *backoff) ceiling() time.Duration {
	d := b.initial
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// next returns the delay before the next attempt and advances the attempt.
func (b *backoff) next() time.Duration {
	d := time.Duration(b.jitter(int64(b.ceiling())))
	b.attempt++
	return d
}

func (b *backoff) reset() {
	b.attempt = 0
}
