package latency

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileNearestRank(t *testing.T) {
	sorted := make([]time.Duration, 200)
	for i := range sorted {
		sorted[i] = ms(i + 1)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{50, ms(100)},
		{90, ms(180)},
		{99, ms(198)},
		{100, ms(200)},
		{0.1, ms(1)},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Percentile(sorted, tt.p), "p%v", tt.p)
	}
}

func TestPercentileEmptyAndSingle(t *testing.T) {
	assert.Equal(t, time.Duration(0), Percentile(nil, 50))
	assert.Equal(t, ms(7), Percentile([]time.Duration{ms(7)}, 99))
}

func TestSummarizeSortsAndAverages(t *testing.T) {
	s := Summarize([]time.Duration{ms(3), ms(1), ms(2)})

	assert.Equal(t, 3, s.Count)
	assert.Equal(t, ms(1), s.Min)
	assert.Equal(t, ms(2), s.P50)
	assert.Equal(t, ms(3), s.P99)
	assert.Equal(t, ms(3), s.Max)
	assert.Equal(t, ms(2), s.Mean)
}

func TestSummarizeEmpty(t *testing.T) {
	assert.Equal(t, Summary{}, Summarize(nil))
}

func TestRecorderConcurrentAdds(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				r.Add(ms(1))
			}
		})
	}
	wg.Wait()

	assert.Equal(t, 800, r.Summary().Count)
}

func TestFormatUnits(t *testing.T) {
	assert.Equal(t, "42.0µs", Format(42*time.Microsecond))
	assert.Equal(t, "0.10ms", Format(100*time.Microsecond))
	assert.Equal(t, "1.23ms", Format(1234*time.Microsecond))
}

func BenchmarkRecorderAdd(b *testing.B) {
	var r Recorder
	for b.Loop() {
		r.Add(time.Millisecond)
	}
}
