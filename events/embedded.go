package events

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrEmbeddedServer is wrapped by Open when the embedded nats-server does
// not start.
var ErrEmbeddedServer = errors.New("embedded NATS server failed")

// startEmbedded starts an in-process nats-server with JetStream storing in
// DataDir/nats and waits until it accepts clients.
func startEmbedded(cfg Config, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: cfg.Node,
		Host:       cfg.Embedded.Host,
		Port:       cfg.Embedded.Port,
		DontListen: cfg.Embedded.DontListen,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		// agentd handles signals itself, so the server must not install
		// handlers of its own.
		NoSigs:        true,
		Username:      cfg.Conn.User,
		Password:      cfg.Conn.Password,
		Authorization: cfg.Conn.Token,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEmbeddedServer, err)
	}
	// agentd passes a logger with component=events, so the server's lines
	// get a key of their own instead of a second component key.
	logger := &serverLogger{log: log.With("server", "nats")}
	srv.SetLoggerV2(logger, false, false, false)

	srv.Start()
	ready := srv.ReadyForConnections(cfg.Embedded.ReadyTimeout)
	if fatal := logger.fatalMessage(); !ready || fatal != "" || !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w: ready %t, JetStream enabled %t, fatal error %q (listen %s:%d, store %s)",
			ErrEmbeddedServer, ready, srv.JetStreamEnabled(), fatal, cfg.Embedded.Host, cfg.Embedded.Port, opts.StoreDir)
	}

	addr := "none"
	if !cfg.Embedded.DontListen {
		addr = srv.ClientURL()
	}
	log.Info("embedded NATS server started", "listen", addr, "store_dir", opts.StoreDir)
	return srv, nil
}

func stopEmbedded(srv *server.Server, log *slog.Logger) {
	srv.Shutdown()
	srv.WaitForShutdown()
	log.Info("embedded NATS server stopped")
}

// serverLogger passes nats-server log lines to slog. Notices go to Debug,
// because nats-server v2.15 writes more than 20 of them at each start (its
// banner, version and JetStream settings), and agentd logs its own
// "embedded NATS server started" at Info. Warnings and errors keep their
// levels. nats-server v2.15 exits the process on a fatal error only
// through its default logger. With this logger the server keeps running,
// so Fatalf records the first message for startEmbedded to check.
type serverLogger struct {
	log   *slog.Logger
	fatal atomic.Pointer[string]
}

func (l *serverLogger) fatalMessage() string {
	if msg := l.fatal.Load(); msg != nil {
		return *msg
	}
	return ""
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.CompareAndSwap(nil, &msg)
	l.log.Error(msg)
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
