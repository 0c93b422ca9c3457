package events

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedServerLogsAtDebug(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "events")
	s := openStore(t, testConfig(t, t.TempDir()), log)
	closeStore(t, s)

	var serverLines, started int
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		assert.Equal(t, 1, strings.Count(line, `"component"`), "one component key per line: %s", line)
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), line)
		if entry["msg"] == "embedded NATS server started" {
			started++
			assert.Equal(t, "INFO", entry["level"], line)
		}
		if entry["server"] != "nats" {
			continue
		}
		serverLines++
		assert.NotEqual(t, "INFO", entry["level"], "nats-server notices log at Debug: %s", line)
	}
	assert.Equal(t, 1, started)
	assert.Greater(t, serverLines, 10, "the server's start notices reach the log at Debug")
}
