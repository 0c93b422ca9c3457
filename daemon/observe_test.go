package daemon

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func TestObserveSkipsDurationWithoutResponse(t *testing.T) {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"action", "result"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d"}, []string{"action"})
	start := time.Now()

	observe(count, duration, "QueueAdd", start, fmt.Errorf("send: %w", agent.ErrAsteriskUnavailable))
	observe(count, duration, "QueueAdd", start, nil)
	observe(count, duration, "QueueAdd", start, &agent.AsteriskError{Action: "QueueAdd", Message: "No such queue"})
	observe(count, duration, "QueueAdd", start, errors.New("other"))

	var m dto.Metric
	require.NoError(t, count.WithLabelValues("QueueAdd", "unavailable").Write(&m))
	assert.InDelta(t, 1, m.GetCounter().GetValue(), 0, "counted")
	require.NoError(t, duration.WithLabelValues("QueueAdd").(prometheus.Histogram).Write(&m))
	assert.Equal(t, uint64(3), m.GetHistogram().GetSampleCount(), "timed but for the unavailable one")
}
