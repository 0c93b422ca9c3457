package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRepeatedErrorsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	log := slog.New(newRateLimitHandler(slog.NewTextHandler(&buf, nil), func() time.Time { return now }))

	for i := range 5 {
		log.Error("AMI action failed", "err", "connection refused", "request_id", i)
	}
	log.Error("AMI action failed", "err", "timeout") // another error passes
	log.Info("agent state changed", "agent_id", "1001")
	log.Info("agent state changed", "agent_id", "1001") // info is never limited
	now = now.Add(repeatWindow + time.Second)
	log.Error("AMI action failed", "err", "connection refused")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Len(t, lines, 5)
	assert.Equal(t, 1, strings.Count(buf.String(), "suppressed="), buf.String())
	assert.Contains(t, lines[4], "suppressed=4")
}

func TestRateLimitKeepsLoggerAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newRateLimitHandler(slog.NewTextHandler(&buf, nil), time.Now)).With("component", "ami")

	log.Warn("retrying")

	assert.Contains(t, buf.String(), "component=ami")
}
