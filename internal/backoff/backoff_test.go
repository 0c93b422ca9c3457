package backoff

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCeilingDoublesToCap(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	b.jitter = func(n int64) int64 { return n }

	var got []time.Duration
	for range 7 {
		got = append(got, b.Next())
	}

	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second, time.Second,
	}
	assert.Equal(t, want, got)
}

func TestReset(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	b.jitter = func(n int64) int64 { return n }
	for range 5 {
		b.Next()
	}

	b.Reset()

	assert.Equal(t, 100*time.Millisecond, b.Next())
}

func TestJitterWithinCeiling(t *testing.T) {
	b := New(time.Millisecond, 8*time.Millisecond)
	seenBelowCeiling := false

	for i := range 1000 {
		ceiling := b.Ceiling()
		d := b.Next()
		assert.GreaterOrEqual(t, d, time.Duration(0), "attempt %d", i)
		assert.LessOrEqual(t, d, ceiling, "attempt %d", i)
		if d < ceiling {
			seenBelowCeiling = true
		}
	}

	assert.True(t, seenBelowCeiling, "no jitter applied in 1000 delays")
}

func TestManyAttemptsStayCapped(t *testing.T) {
	b := New(time.Nanosecond, time.Hour)
	b.jitter = func(n int64) int64 { return n }
	b.attempt = 10_000

	assert.Equal(t, time.Hour, b.Next())
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	assert.False(t, Sleep(ctx, time.Hour))
	assert.False(t, Sleep(ctx, 0))
	assert.True(t, Sleep(t.Context(), time.Millisecond))
}

func TestRepeats(t *testing.T) {
	var r Repeats
	dialErr := errors.New("connection refused")

	assert.False(t, r.Seen(dialErr), "a first error is new")
	assert.True(t, r.Seen(errors.New("connection refused")), "the same text repeats")
	assert.False(t, r.Seen(errors.New("authentication failed")))
	r.Reset()
	assert.False(t, r.Seen(errors.New("authentication failed")), "new after a success")
}

func TestDelayWithinCeiling(t *testing.T) {
	const minDelay, maxDelay = 100 * time.Millisecond, time.Second
	ceilings := map[int]time.Duration{0: 100 * time.Millisecond, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second}

	for attempt, ceiling := range ceilings {
		sawAboveHalf := false
		for range 1000 {
			d := Delay(minDelay, maxDelay, attempt)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, ceiling, "attempt %d", attempt)
			sawAboveHalf = sawAboveHalf || d > ceiling/2
		}
		assert.True(t, sawAboveHalf, "attempt %d: the ceiling must grow to %v", attempt, ceiling)
	}
}
