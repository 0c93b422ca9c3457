package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
)

// splitHandler formats every record at Info and above, as agentd does in
// production, so the figures include the cost of its logs, but prints only
// warnings and errors.
type splitHandler struct {
	formatted slog.Handler // Info and above, to io.Discard
	printed   slog.Handler // Warn and above, to stderr
}

func newLogger() *slog.Logger {
	return slog.New(splitHandler{
		//nolint:sloglint // formatting to io.Discard is the point: the records cost what they cost in production
		formatted: slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}),
		printed:   slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}),
	})
}

func (h splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.formatted.Enabled(ctx, l)
}

func (h splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.printed.Enabled(ctx, r.Level) {
		return h.printed.Handle(ctx, r)
	}
	return h.formatted.Handle(ctx, r)
}

func (h splitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return splitHandler{formatted: h.formatted.WithAttrs(attrs), printed: h.printed.WithAttrs(attrs)}
}

func (h splitHandler) WithGroup(name string) slog.Handler {
	return splitHandler{formatted: h.formatted.WithGroup(name), printed: h.printed.WithGroup(name)}
}

// Directories of the profiles and execution traces, set from the flags.
var profileDir, traceDir string

// profiled runs fn under a CPU profile written to profileDir/name.pprof
// and an execution trace written to traceDir/name.trace, each when its
// directory is set. Both cover the whole process: agentd in-process and
// the benchmark's clients. "go tool trace -pprof=sync FILE" turns a trace
// into a profile of the time goroutines waited.
func profiled(name string, fn func() error) error {
	if profileDir != "" {
		f, err := createIn(profileDir, name+".pprof")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile %s: %w", name, err)
		}
		defer pprof.StopCPUProfile()
	}
	if traceDir != "" {
		f, err := createIn(traceDir, name+".trace")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return fmt.Errorf("start execution trace %s: %w", name, err)
		}
		defer trace.Stop()
	}
	return fn()
}

func createIn(dir, name string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(filepath.Join(dir, name))
}
