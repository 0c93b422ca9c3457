package ari

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffCeilingDoublesToCap(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	b.jitter = func(n int64) int64 { return n }

	var got []time.Duration
	for range 7 {
		got = append(got, b.next())
	}

	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second, time.Second,
	}
	assert.Equal(t, want, got)
}

func TestBackoffReset(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	b.jitter = func(n int64) int64 { return n }
	for range 5 {
		b.next()
	}

	b.reset()

	assert.Equal(t, 100*time.Millisecond, b.next())
}

func TestBackoffJitterWithinCeiling(t *testing.T) {
	b := newBackoff(time.Millisecond, 8*time.Millisecond)
	seenBelowCeiling := false

	for i := range 1000 {
		ceiling := b.ceiling()
		d := b.next()
		assert.GreaterOrEqual(t, d, time.Duration(0), "attempt %d", i)
		assert.LessOrEqual(t, d, ceiling, "attempt %d", i)
		if d < ceiling {
			seenBelowCeiling = true
		}
	}

	assert.True(t, seenBelowCeiling, "no jitter applied in 1000 delays")
}

func TestBackoffManyAttemptsStayCapped(t *testing.T) {
	b := newBackoff(time.Nanosecond, maxBackoff)
	b.jitter = func(n int64) int64 { return n }
	b.attempt = 10_000

	assert.Equal(t, maxBackoff, b.next())
}
