package daemon

import (
	"io"
	"log/slog"
	"time"
)

// NewLogger builds the slog logger described by cfg, with repeated
// identical warnings and errors rate-limited. The returned level can be
// changed later, for a reload.
func NewLogger(w io.Writer, cfg LogConfig) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newRateLimitHandler(h, time.Now)), level
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
