package agi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	// DefaultAddr is loopback on AGI_PORT, the port res_agi dials when the
	// AGI URL names none.
	DefaultAddr           = "127.0.0.1:4573"
	DefaultMaxSessions    = 512
	DefaultCommandTimeout = 5 * time.Second
	DefaultIdleTimeout    = 10 * time.Second
	DefaultMaxLineBytes   = 8192
	// minMaxLineBytes keeps room for a GET VARIABLE response, whose value
	// Asterisk 22 cuts to 1023 bytes.
	minMaxLineBytes = 1200
)

// rejectLogInterval is the least time between two log lines about rejected
// connections of one kind; the lines in between are counted.
const rejectLogInterval = 10 * time.Second

// Config holds what a Server needs. Zero values take the defaults.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on. Default
	// 127.0.0.1:4573.
	Addr string
	// Allow lists the networks that may connect; other peers are closed at
	// once. Default 127.0.0.0/8 and ::1/128.
	Allow []netip.Prefix
	// MaxSessions caps the sessions served at once; further connections
	// are closed at once. Default 512.
	MaxSessions int
	// CommandTimeout bounds each AGI command's wait for its response and
	// each agent use case a script runs. Default 5 s.
	CommandTimeout time.Duration
	// IdleTimeout bounds the time from accepting a connection to the blank
	// line that ends the header. Asterisk writes the header at once, so
	// only a stalled or hostile peer reaches it. Default 10 s.
	IdleTimeout time.Duration
	// MaxLineBytes is the longest line accepted from the peer, line end
	// excluded; a longer line closes the connection. Default 8192, at
	// least 1200.
	MaxLineBytes int
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// OnSession, when set, is called after each session with its script,
	// its outcome and its duration. The outcome is the AGENT_RESULT the
	// script set (OK or ERROR), "hangup" when the call ended first, or
	// "failed" when the session failed.
	OnSession func(script, outcome string, elapsed time.Duration)
}

// DefaultAllow returns the loopback networks 127.0.0.0/8 and ::1/128.
func DefaultAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// withDefaults fills zero fields and rejects invalid ones.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Allow == nil {
		c.Allow = DefaultAllow()
	}
	c.MaxSessions = orDefault(c.MaxSessions, DefaultMaxSessions)
	c.CommandTimeout = orDefault(c.CommandTimeout, DefaultCommandTimeout)
	c.IdleTimeout = orDefault(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxLineBytes = orDefault(c.MaxLineBytes, DefaultMaxLineBytes)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}

	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("agi: invalid config: %w", err)
	}
	return c, nil
}

// validate lists every invalid field of a config with defaults filled.
func (c Config) validate() error {
	var problems []error
	if len(c.Allow) == 0 {
		problems = append(problems, errors.New("allow list is empty, so no peer could connect: list networks or leave it nil for loopback"))
	}
	for _, p := range c.Allow {
		if !p.IsValid() {
			problems = append(problems, fmt.Errorf("allow entry %q is not a valid network such as 10.0.0.0/8", p))
		}
	}
	if c.MaxSessions < 0 {
		problems = append(problems, fmt.Errorf("max sessions %d is negative: use 0 for the default or a positive number", c.MaxSessions))
	}
	if c.CommandTimeout < 0 || c.IdleTimeout < 0 {
		problems = append(problems, fmt.Errorf("command timeout %v and idle timeout %v must not be negative", c.CommandTimeout, c.IdleTimeout))
	}
	if c.MaxLineBytes < minMaxLineBytes {
		problems = append(problems, fmt.Errorf("max line bytes %d is below the minimum %d", c.MaxLineBytes, minMaxLineBytes))
	}
	return errors.Join(problems...)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Handler serves one session: it reads the request, calls the domain and
// sets channel variables. The connection is closed when it returns; a
// returned error is logged. ctx ends when the server closes the session.
type Handler func(ctx context.Context, s *Session) error

// Server is a FastAGI server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	counters counters

	handlersMu sync.RWMutex
	handlers   map[string]Handler

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	sessions  map[*liveSession]struct{}
	addr      net.Addr
	wg        sync.WaitGroup // one per live session

	// Session goroutines are reused: each waits idleWorkerTimeout on idle
	// for the next connection, and ends then or when quit closes.
	idle    chan sessionWork
	quit    chan struct{} // closed when the server starts closing
	workers sync.WaitGroup
}

// idleWorkerTimeout is how long a session goroutine waits for another
// connection before it ends. A reused goroutine keeps the stack it grew:
// growing a new goroutine's stack took about 4 % of the CPU time of the
// FastAGI scenario of make bench.
const idleWorkerTimeout = 10 * time.Second

// sessionWork is a tracked connection for a session goroutine.
type sessionWork struct {
	ctx context.Context
	ls  *liveSession
}

// liveSession is a connection being served, with the means to end it.
type liveSession struct {
	conn   net.Conn
	cancel context.CancelFunc
}

// NewServer returns a server with the agent scripts registered; agents
// serves them.
func NewServer(cfg Config, agents Agents) (*Server, error) {
	if agents == nil {
		return nil, errors.New("agi: NewServer needs an Agents implementation")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		handlers:  make(map[string]Handler),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*liveSession]struct{}),
		idle:      make(chan sessionWork),
		quit:      make(chan struct{}),
	}
	if err := registerAgentScripts(s, agents); err != nil {
		return nil, err
	}
	return s, nil
}

// Handle registers h for the script name, such as "agent_state" for
// AGI(agi://host/agent_state,…). It is meant to be called before serving;
// a name already registered is an error.
func (s *Server) Handle(script string, h Handler) error {
	if script == "" || h == nil || strings.ContainsAny(script, "?,") || strings.Trim(script, "/") != script {
		return fmt.Errorf("agi: cannot register script %q: use a non-empty name without '?', ',' or leading and trailing '/', and a handler", script)
	}
	s.handlersMu.Lock()
	defer s.handlersMu.Unlock()
	if _, dup := s.handlers[script]; dup {
		return fmt.Errorf("agi: script %q is already registered", script)
	}
	s.handlers[script] = h
	return nil
}

func (s *Server) handler(script string) (Handler, bool) {
	s.handlersMu.RLock()
	defer s.handlersMu.RUnlock()
	h, ok := s.handlers[script]
	return h, ok
}

// Addr returns the address of the first listener being served, or nil
// before Serve or ListenAndServe has started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe listens on Config.Addr and serves it; see Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := Listen(ctx, s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Listen opens a TCP listener for Serve on addr. Its connections have no
// TCP keepalive: a session is short and bounded by the idle timeout, and
// the keepalive options would cost system calls on every connection.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agi: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve accepts connections on ln until Shutdown, ctx ending or an accept
// error that is not transient, and serves each in its own goroutine. It
// closes ln before returning. After Shutdown it returns ErrServerClosed at
// once. When ctx ends, the server closes every listener and every session
// without waiting, and Serve returns ctx.Err() once the session goroutines
// have returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.trackListener(ln) {
		_ = ln.Close() // never served; nothing to report
		return ErrServerClosed
	}
	defer s.untrackListener(ln)
	stop := context.AfterFunc(ctx, s.closeNow)
	defer stop()
	s.log.Info("agi server listening", "addr", ln.Addr().String())

	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err == nil {
			delay = 0
			s.start(ctx, conn)
			continue
		}
		switch {
		case ctx.Err() != nil:
			s.wg.Wait()
			s.workers.Wait()
			s.log.Info("agi server stopped", "addr", ln.Addr().String(), "reason", context.Cause(ctx))
			return ctx.Err()
		case s.isClosing():
			return ErrServerClosed
		case transientAcceptError(err):
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("agi accept failed; retrying", "addr", ln.Addr().String(), "retry_in", delay, "err", err)
			time.Sleep(delay)
		default:
			return fmt.Errorf("agi: accept on %s: %w", ln.Addr(), err)
		}
	}
}

// transientAcceptError reports an accept error that goes away once
// connections or memory are freed, such as running out of file
// descriptors.
func transientAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

func (s *Server) trackListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.listeners[ln] = struct{}{}
	if s.addr == nil {
		s.addr = ln.Addr()
	}
	return true
}

func (s *Server) untrackListener(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	_ = ln.Close() // already closed after Shutdown; a second close only errs
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting connections and waits for the sessions in
// progress to finish. When ctx ends first, it closes the remaining
// sessions, waits for their goroutines and returns an error wrapping
// ctx.Err(). Calling it again is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.workers.Wait()
		close(done)
	}()

	select {
	case <-done:
		s.log.Info("agi server stopped")
		return nil
	case <-ctx.Done():
		n := s.closeSessions()
		<-done
		s.log.Warn("agi server stopped; sessions in progress were closed", "sessions", n)
		return fmt.Errorf("agi: shutdown closed %d sessions in progress: %w", n, ctx.Err())
	}
}

// closeNow closes listeners and sessions at once.
func (s *Server) closeNow() {
	s.closeListeners()
	s.closeSessions()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		close(s.quit)
	}
	s.closing = true
	for ln := range s.listeners {
		_ = ln.Close() // Serve gets the close as its accept error
	}
}

// closeSessions cancels every live session and closes its connection. It
// returns how many it closed.
func (s *Server) closeSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ls := range s.sessions {
		ls.cancel()
		_ = ls.conn.Close() // the session goroutine reports its own I/O errors
	}
	return len(s.sessions)
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := len(s.sessions)
	s.mu.Unlock()
	st := s.counters.snapshot()
	st.Active = active
	return st
}

// start checks the peer and the session cap, then serves conn in a new
// goroutine.
func (s *Server) start(ctx context.Context, conn net.Conn) {
	peer, ok := s.allowed(conn.RemoteAddr())
	if !ok {
		_ = conn.Close() // rejected; nothing was read or written
		s.counters.rejectedAddress.Add(1)
		s.counters.addressLog.log(s.log, "agi connection from an address outside the allow list closed", "remote_addr", peer)
		return
	}

	ctx, cancel := context.WithCancel(ctx)
	ls := &liveSession{conn: conn, cancel: cancel}
	err := s.track(ls)
	if err == nil {
		s.counters.accepted.Add(1)
		work := sessionWork{ctx: ctx, ls: ls}
		select {
		case s.idle <- work:
		default:
			s.workers.Add(1)
			s.counters.workers.Add(1)
			go s.worker(work)
		}
		return
	}
	if errors.Is(err, errBusy) {
		writeFailure(conn)
		s.counters.rejectedBusy.Add(1)
		s.counters.busyLog.log(s.log, "agi connection closed: session cap reached", "remote_addr", peer, "max_sessions", s.cfg.MaxSessions)
	}
	cancel()
	_ = conn.Close() // rejected; the peer learns it from the close
}

// allowed returns the peer's IP address and whether Allow contains it. A
// peer without an IP address, such as a Unix socket, is not allowed.
func (s *Server) allowed(addr net.Addr) (string, bool) {
	var ip netip.Addr
	if tcp, ok := addr.(*net.TCPAddr); ok {
		ip = tcp.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return addr.String(), false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range s.cfg.Allow {
		if p.Contains(ip) {
			return ip.String(), true
		}
	}
	return ip.String(), false
}

// errBusy and errClosing explain why track refused a session;
// errHandlerPanic marks a handler that panicked.
var (
	errBusy         = errors.New("session cap reached")
	errClosing      = errors.New("server closing")
	errHandlerPanic = errors.New("agi handler panicked")
)

func (s *Server) track(ls *liveSession) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errClosing
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		return errBusy
	}
	s.sessions[ls] = struct{}{}
	s.wg.Add(1)
	return nil
}

func (s *Server) untrack(ls *liveSession) {
	s.mu.Lock()
	delete(s.sessions, ls)
	s.mu.Unlock()
	ls.cancel()
	_ = ls.conn.Close() // the session is over; Asterisk ends the AGI on the close
	s.wg.Done()
}

// worker serves work, then each connection it receives on idle, until no
// connection came for idleWorkerTimeout or the server closes.
func (s *Server) worker(work sessionWork) {
	defer s.workers.Done()
	timer := time.NewTimer(idleWorkerTimeout)
	defer timer.Stop()
	// The read buffer holds a whole line, 8 KiB by default, so each
	// goroutine keeps its own for all its sessions.
	br := bufio.NewReaderSize(nil, s.cfg.MaxLineBytes+1)
	for {
		s.serveConn(work.ctx, work.ls, br)
		br.Reset(nil) // drop the closed connection
		timer.Reset(idleWorkerTimeout)
		select {
		case work = <-s.idle:
		case <-timer.C:
			return
		case <-s.quit:
			return
		}
	}
}

// serveConn reads the header, runs the script's handler and closes the
// connection. A peer whose header is invalid gets no reply.
func (s *Server) serveConn(ctx context.Context, ls *liveSession, br *bufio.Reader) {
	defer s.untrack(ls)

	sess, err := s.readSession(ls.conn, br)
	if err != nil {
		s.counters.invalidHeaders.Add(1)
		s.counters.headerLog.log(s.log, "agi header rejected; connection closed", "remote_addr", ls.conn.RemoteAddr().String(), "err", err)
		return
	}
	sess.ctx = ctx
	s.runHandler(ctx, sess)
}

// readSession reads the header within IdleTimeout and builds the session.
// It reads through br, a buffer of MaxLineBytes+1 bytes, reset to conn.
func (s *Server) readSession(conn net.Conn, br *bufio.Reader) (*Session, error) {
	if err := conn.SetDeadline(time.Now().Add(s.cfg.IdleTimeout)); err != nil {
		return nil, err
	}
	br.Reset(conn)
	r := &reader{br: br, maxLine: s.cfg.MaxLineBytes}
	h, err := r.readHeader()
	if err != nil {
		return nil, err
	}
	req, reqErr := h.Request()
	sess := newSession(conn, r, h, req, s.cfg.CommandTimeout, s.log)
	if reqErr != nil {
		sess.Logger().Warn("agi query string invalid; using the parameters that parsed", "err", reqErr)
	}
	return sess, nil
}

// runHandler runs the handler registered for the session's script. When
// the handler fails or panics, the server sends failureLine, so the
// dialplan gets AGISTATUS=FAILURE. A panic is logged and ends only this
// session.
func (s *Server) runHandler(ctx context.Context, sess *Session) {
	start := time.Now()
	err := s.callHandler(ctx, sess)
	if sess.HungUp() {
		s.counters.hangups.Add(1)
	}
	switch {
	case err != nil && sess.HungUp() && errors.Is(err, ErrSessionClosed):
		sess.Logger().Debug("agi session ended by a hangup", "err", err)
	case err != nil:
		s.counters.failed.Add(1)
		sess.Logger().Warn("agi session failed", "channel", sess.Header().Channel(), "err", err)
		sess.fail()
	case s.log.Enabled(ctx, slog.LevelDebug):
		sess.Logger().Debug("agi session done", "duration", time.Since(start), "hangup", sess.HungUp())
	}
	if s.cfg.OnSession != nil {
		s.cfg.OnSession(sess.Request().Script, sessionOutcome(sess, err), time.Since(start))
	}
}

// sessionOutcome names how a session ended, for Config.OnSession.
func sessionOutcome(sess *Session, err error) string {
	switch {
	case err != nil && sess.HungUp():
		return "hangup"
	case err != nil:
		return "failed"
	}
	if r := sess.result.Load(); r != nil {
		return *r
	}
	return ResultOK
}

// callHandler runs the handler of the session's script, or unknownScript,
// and turns a panic into an error.
func (s *Server) callHandler(ctx context.Context, sess *Session) (err error) {
	h, ok := s.handler(sess.Request().Script)
	if !ok {
		s.counters.unknownScripts.Add(1)
		h = unknownScript
	}
	defer func() {
		if v := recover(); v != nil {
			sess.Logger().Error("agi handler panicked", "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", errHandlerPanic, v)
		}
	}()
	return h(ctx, sess)
}
