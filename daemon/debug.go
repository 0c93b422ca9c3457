package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer is the HTTP server of the net/http/pprof handlers on
// debug.listen.
type debugServer struct {
	http *http.Server
	ln   net.Listener
	// cancel ends the requests in flight, so that a CPU profile or an
	// execution trace does not hold up Stop for its full duration.
	cancel context.CancelFunc
}

// newDebugMux registers the pprof handlers on a mux of their own. The
// package's init also registers them on http.DefaultServeMux, which no
// agentd server uses. The index handler also serves the named profiles,
// such as /debug/pprof/heap and /debug/pprof/goroutine.
func newDebugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startDebug listens on debug.listen and serves pprof there. An empty
// debug.listen, the default, starts nothing.
func (d *Daemon) startDebug(ctx context.Context) error {
	if d.cfg.Debug.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.Debug.Listen)
	if err != nil {
		return fmt.Errorf("debug.listen %s: %w", d.cfg.Debug.Listen, err)
	}
	logDebugListener(d.log, ln.Addr())

	requestCtx, cancel := context.WithCancel(ctx)
	srv := &http.Server{
		Handler:           newDebugMux(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return requestCtx },
	}
	d.debug = &debugServer{http: srv, ln: ln, cancel: cancel}
	d.loops.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("debug server failed", "addr", ln.Addr().String(), "err", err)
		}
	})
	return nil
}

// logDebugListener logs the address of the pprof listener. It warns when
// that address is not a loopback address, because pprof has no
// authentication and shows the command line and every goroutine's stack.
func logDebugListener(log *slog.Logger, addr net.Addr) {
	log.Info("debug server serving pprof", "addr", addr.String())
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		return
	}
	log.Warn("debug server is reachable from other hosts, and pprof has no authentication: set debug.listen to a loopback address, such as 127.0.0.1:6060",
		"addr", addr.String())
}

// shutdown ends the requests in flight and closes the listener. A CPU
// profile or a trace in flight returns what it recorded until then.
func (s *debugServer) shutdown(ctx context.Context) error {
	s.cancel()
	return s.http.Shutdown(ctx)
}

// DebugAddr returns the address the pprof handlers are served on, or nil
// when debug.listen is empty.
func (d *Daemon) DebugAddr() net.Addr {
	if d.debug == nil {
		return nil
	}
	return d.debug.ln.Addr()
}
