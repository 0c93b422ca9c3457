// Package latency records durations and summarizes them as percentiles.
package latency

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Recorder collects durations. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	samples []time.Duration
}

// Add records one duration.
func (r *Recorder) Add(d time.Duration) {
	r.mu.Lock()
	r.samples = append(r.samples, d)
	r.mu.Unlock()
}

// Since records the time elapsed since start.
func (r *Recorder) Since(start time.Time) {
	r.Add(time.Since(start))
}

// Summary returns the percentiles of the durations recorded so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	sorted := slices.Clone(r.samples)
	r.mu.Unlock()
	return Summarize(sorted)
}

// Summary describes a set of durations.
type Summary struct {
	Count              int
	Min, P50, P90, P99 time.Duration
	Max, Mean          time.Duration
}

// Summarize sorts samples in place and returns their summary. Percentiles
// use the nearest-rank method: P99 of 200 samples is the 198th smallest.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var total time.Duration
	for _, d := range samples {
		total += d
	}
	return Summary{
		Count: len(samples),
		Min:   samples[0],
		P50:   Percentile(samples, 50),
		P90:   Percentile(samples, 90),
		P99:   Percentile(samples, 99),
		Max:   samples[len(samples)-1],
		Mean:  total / time.Duration(len(samples)),
	}
}

// Percentile returns the nearest-rank percentile p (0 < p ≤ 100) of sorted
// samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// String formats the summary as "p50 1.23ms p99 4.56ms (n=200)".
func (s Summary) String() string {
	return fmt.Sprintf("p50 %s p99 %s (n=%d)", Format(s.P50), Format(s.P99), s.Count)
}

// Format prints d in milliseconds with two decimals, or in microseconds
// below 0.1 ms, so figures of one table share a unit.
func Format(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
