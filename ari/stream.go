package ari

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/contactcenter/agentd/internal/backoff"
)

// Defaults applied by NewEventStream to zero EventStreamConfig fields.
const (
	DefaultQueueSize      = 1024
	DefaultReadLimit      = 1 << 20 // bytes of one event
	DefaultPingInterval   = 10 * time.Second
	DefaultPingTimeout    = 5 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	DefaultBackoffInitial = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
)

const (
	// stableConnection is how long a connection must stay up before the
	// next reconnect starts again from BackoffInitial. A server that
	// accepts and then drops the socket at once is thus retried with
	// growing delays.
	stableConnection = 30 * time.Second
	// closeGrace bounds the close handshake at shutdown. After it the TCP
	// connection is closed without waiting for Asterisk's close frame.
	closeGrace = 2 * time.Second
	// warnInterval spaces out repeated warnings about dropped and
	// malformed events.
	warnInterval = 10 * time.Second
	// maxBackoff bounds BackoffMax so that the doubling cannot overflow.
	maxBackoff = time.Hour
)

// ErrPingTimeout is wrapped by the connection error when Asterisk did not
// respond to a websocket ping within EventStreamConfig.PingTimeout.
var ErrPingTimeout = errors.New("ari: no pong to websocket ping")

// ErrStreamRunning is returned by Run while another Run of the same
// EventStream is active.
var ErrStreamRunning = errors.New("ari: event stream already running")

// EventStreamConfig configures an EventStream.
type EventStreamConfig struct {
	// Application is the Stasis application to register. Empty means the
	// Client's Config.Application.
	Application string
	// OnConnect runs in its own goroutine after every connect, once the
	// websocket is up and the application is registered. Asterisk does
	// not restore event-source subscriptions after a reconnect and drops
	// the events sent while no socket was open, so OnConnect should call
	// Subscribe again and resync state. ctx ends when the connection
	// ends. A non-nil error closes the connection, which is then retried
	// with backoff. Calls for successive connections may overlap briefly;
	// the ctx of the earlier call has ended by then.
	OnConnect func(ctx context.Context) error
	// OnEvent receives every event in arrival order, from one goroutine.
	// It must not block for long: while it runs, events queue up to
	// QueueSize and later ones are dropped. Required.
	OnEvent func(Event)

	QueueSize      int           // events waiting for OnEvent; default DefaultQueueSize
	ReadLimit      int64         // max bytes of one websocket message; default DefaultReadLimit
	PingInterval   time.Duration // time between keepalive pings; default DefaultPingInterval
	PingTimeout    time.Duration // max wait for a pong; default DefaultPingTimeout
	DialTimeout    time.Duration // max time for connect and handshake; default DefaultDialTimeout
	BackoffInitial time.Duration // first reconnect delay ceiling; default DefaultBackoffInitial
	BackoffMax     time.Duration // reconnect delay cap; default DefaultBackoffMax
}

// StreamStats are counters since the EventStream was created.
type StreamStats struct {
	Attempts     uint64 // connect attempts
	Failures     uint64 // attempts that did not open the websocket
	Connects     uint64 // attempts that opened it
	Disconnects  uint64 // open websockets lost before Run's ctx ended
	Events       uint64 // events queued for OnEvent
	Malformed    uint64 // messages skipped because they were not ARI events
	Dropped      uint64 // events dropped because the queue was full
	PingFailures uint64 // pings without a pong in time
}

type streamCounters struct {
	attempts, failures, connects, disconnects atomic.Uint64
	events, malformed, dropped, pingFailures  atomic.Uint64
}

// EventStream keeps the /ari/events websocket of one application open and
// delivers its events. Create it with NewEventStream and start it with Run.
type EventStream struct {
	cfg    EventStreamConfig
	url    string
	path   string // escaped path of url, for errors
	header http.Header
	http   *http.Client
	log    *slog.Logger

	running  atomic.Bool
	counters streamCounters

	mu      sync.Mutex
	up      bool
	since   time.Time
	lastErr error
	rawConn net.Conn // TCP connection of the latest dial

	dropWarn      rateLimitedLog
	malformedWarn rateLimitedLog
}

// NewEventStream validates cfg and returns an EventStream that connects
// with c's URL and credentials. It does not contact Asterisk.
func NewEventStream(c *Client, cfg EventStreamConfig) (*EventStream, error) {
	if cfg.Application == "" {
		cfg.Application = c.cfg.Application
	}
	if err := checkStreamConfig(&cfg); err != nil {
		return nil, err
	}

	s := &EventStream{
		cfg:           cfg,
		log:           c.log.With("app", cfg.Application),
		dropWarn:      rateLimitedLog{every: warnInterval},
		malformedWarn: rateLimitedLog{every: warnInterval},
	}
	eventsURL := c.endpointURL([]string{"events"}, url.Values{
		"app":          {cfg.Application},
		"subscribeAll": {"false"},
	})
	s.url, s.path = eventsURL.String(), eventsURL.EscapedPath()
	credentials := base64.StdEncoding.EncodeToString([]byte(c.cfg.Username + ":" + c.cfg.Password))
	s.header = http.Header{"Authorization": {"Basic " + credentials}}
	s.http = &http.Client{Transport: s.newTransport()}
	return s, nil
}

// checkStreamConfig fills defaults and rejects invalid values.
func checkStreamConfig(cfg *EventStreamConfig) error {
	if cfg.Application == "" {
		return errors.New("ari: missing Application: set Config.Application or EventStreamConfig.Application")
	}
	if strings.Contains(cfg.Application, ",") {
		return fmt.Errorf("ari: invalid Application %q: a comma separates application names in /ari/events", cfg.Application)
	}
	if cfg.OnEvent == nil {
		return errors.New("ari: missing OnEvent in EventStreamConfig")
	}

	setDefault(&cfg.QueueSize, DefaultQueueSize)
	setDefault(&cfg.ReadLimit, DefaultReadLimit)
	setDefault(&cfg.PingInterval, DefaultPingInterval)
	setDefault(&cfg.PingTimeout, DefaultPingTimeout)
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.BackoffInitial, DefaultBackoffInitial)
	setDefault(&cfg.BackoffMax, DefaultBackoffMax)

	limits := []struct {
		name  string
		value int64
	}{
		{"QueueSize", int64(cfg.QueueSize)},
		{"ReadLimit", cfg.ReadLimit},
		{"PingInterval", int64(cfg.PingInterval)},
		{"PingTimeout", int64(cfg.PingTimeout)},
		{"DialTimeout", int64(cfg.DialTimeout)},
	}
	for _, l := range limits {
		if l.value < 0 {
			return fmt.Errorf("ari: invalid %s %d in EventStreamConfig: must not be negative", l.name, l.value)
		}
	}
	if cfg.BackoffInitial < 0 || cfg.BackoffMax < cfg.BackoffInitial || cfg.BackoffMax > maxBackoff {
		return fmt.Errorf("ari: invalid backoff %s to %s: need 0 < BackoffInitial <= BackoffMax <= %s",
			cfg.BackoffInitial, cfg.BackoffMax, maxBackoff)
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// newTransport returns a transport that records the TCP connection of
// each dial, so that shutdown can close it when the close handshake
// stalls. Keep-alive is off, so every handshake dials a new connection.
// Go does not add "Connection: close" to a protocol switch request.
func (s *EventStream) newTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				s.mu.Lock()
				s.rawConn = conn
				s.mu.Unlock()
			}
			return conn, err
		},
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: dialTimeout,
	}
}

// Run connects, delivers events and reconnects until ctx ends. It returns
// nil after ctx ends, once OnConnect, OnEvent and every goroutine it
// started have returned. Events still queued then are not delivered.
func (s *EventStream) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrStreamRunning
	}
	defer s.running.Store(false)

	s.log.Info("ARI event stream starting", "url", s.url)
	queue := make(chan Event, s.cfg.QueueSize)
	var callbacks sync.WaitGroup
	callbacks.Go(func() { s.dispatch(ctx, queue) })

	s.connectLoop(ctx, queue, &callbacks)

	callbacks.Wait()
	s.setDown(nil)
	s.log.Info("ARI event stream stopped")
	return nil
}

// connectLoop dials, serves each connection and waits with backoff after
// each failure or disconnect. It logs a failed attempt when its error
// differs from the previous one, and each recovery.
func (s *EventStream) connectLoop(ctx context.Context, queue chan<- Event, callbacks *sync.WaitGroup) {
	retry := backoff.New(s.cfg.BackoffInitial, s.cfg.BackoffMax)
	var repeats backoff.Repeats
	failed := 0 // failed attempts since the last connect
	for {
		s.counters.attempts.Add(1)
		conn, raw, err := s.dial(ctx)
		if err == nil {
			s.connected(failed)
			failed = 0
			start := time.Now()
			err = s.serve(ctx, conn, raw, queue, callbacks)
			lasted := time.Since(start)
			if ctx.Err() != nil {
				return
			}
			s.disconnected(err, lasted)
			repeats.Seen(err) // logged by disconnected
			if lasted >= stableConnection {
				retry.Reset()
			}
		} else {
			s.counters.failures.Add(1)
			failed++
		}
		if ctx.Err() != nil {
			return
		}

		delay := retry.Next()
		s.setDown(err)
		s.logAttempt(err, repeats.Seen(err), failed, delay)
		if !backoff.Sleep(ctx, delay) {
			return
		}
	}
}

// logAttempt logs a failed attempt at Warn, or at Debug when its error
// repeats the last one logged.
func (s *EventStream) logAttempt(err error, repeated bool, failed int, delay time.Duration) {
	level := slog.LevelWarn
	if repeated {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "ARI event stream not connected, retrying",
		"err", err, "failed_attempts", failed, "retry_in", delay)
}

func (s *EventStream) connected(failedBefore int) {
	s.counters.connects.Add(1)
	s.setUp()
	s.log.Info("ARI event stream connected", "failed_attempts", failedBefore)
}

func (s *EventStream) disconnected(err error, lasted time.Duration) {
	s.counters.disconnects.Add(1)
	s.setDown(err)
	s.log.Warn("ARI event stream disconnected", "err", err, "connected_for", lasted.Round(time.Millisecond))
}

// dial opens the websocket and returns it with its TCP connection.
func (s *EventStream) dial(ctx context.Context) (*websocket.Conn, net.Conn, error) {
	dialCtx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()

	// websocket.Dial (coder/websocket v1.8) owns resp.Body: it hands the
	// body to the Conn on success and closes it on failure, keeping a copy
	// of the first 1024 bytes for statusError.
	conn, resp, err := websocket.Dial(dialCtx, s.url, &websocket.DialOptions{ //nolint:bodyclose // Dial closes or takes over resp.Body itself
		HTTPClient:   s.http,
		HTTPHeader:   s.header,
		Subprotocols: []string{"ari"},
	})
	if err != nil {
		return nil, nil, dialError(s.path, resp, err)
	}
	conn.SetReadLimit(s.cfg.ReadLimit)

	s.mu.Lock()
	raw := s.rawConn
	s.rawConn = nil
	s.mu.Unlock()
	return conn, raw, nil
}

// dialError maps a failed handshake. An HTTP error status becomes an
// *Error, as for REST requests. Asterisk responds with 401 for bad
// credentials and 400 without the app parameter.
func dialError(path string, resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return statusError(http.MethodGet, path, resp)
	}
	return transportError(http.MethodGet, path, err)
}

// serve runs one open connection until it fails or ctx ends, and returns
// why it ended.
func (s *EventStream) serve(ctx context.Context, conn *websocket.Conn, raw net.Conn, queue chan<- Event, callbacks *sync.WaitGroup) error {
	connCtx, endConn := context.WithCancel(ctx)
	// readCtx is not canceled by ctx: at shutdown the read loop keeps
	// reading until the close handshake ends.
	readCtx, stopRead := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopRead(nil)

	var helpers sync.WaitGroup
	helpers.Go(func() { s.keepalive(connCtx, conn, stopRead) })
	helpers.Go(func() { s.closeOnShutdown(ctx, connCtx, conn, raw) })
	if s.cfg.OnConnect != nil {
		callbacks.Go(func() { s.runOnConnect(connCtx, stopRead) })
	}

	err := s.readLoop(readCtx, conn, queue)
	if cause := context.Cause(readCtx); cause != nil {
		err = cause
	}

	endConn()
	helpers.Wait()
	_ = conn.CloseNow()
	return err
}

// closeOnShutdown sends a close frame when ctx ends, and closes the TCP
// connection when the handshake has not finished within closeGrace.
func (s *EventStream) closeOnShutdown(ctx, connCtx context.Context, conn *websocket.Conn, raw net.Conn) {
	<-connCtx.Done()
	if ctx.Err() == nil {
		return
	}

	if raw != nil {
		timer := time.AfterFunc(closeGrace, func() { _ = raw.Close() })
		defer timer.Stop()
	}
	if err := conn.Close(websocket.StatusNormalClosure, "agentd stopping"); err != nil {
		s.log.Debug("ARI websocket close handshake failed", "err", err)
	}
}

// keepalive pings every PingInterval and ends the connection when a pong
// does not arrive within PingTimeout. coder/websocket only reads the pong
// while readLoop reads, which it always does here.
func (s *EventStream) keepalive(ctx context.Context, conn *websocket.Conn, stopRead context.CancelCauseFunc) {
	ticker := time.NewTicker(s.cfg.PingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}

		pingCtx, cancel := context.WithTimeout(ctx, s.cfg.PingTimeout)
		err := conn.Ping(pingCtx)
		cancel()
		if err == nil || ctx.Err() != nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			// The connection ended otherwise, and readLoop reports why.
			return
		}

		s.counters.pingFailures.Add(1)
		stopRead(fmt.Errorf("%w within %s: %w", ErrPingTimeout, s.cfg.PingTimeout, err))
		return
	}
}

func (s *EventStream) runOnConnect(ctx context.Context, stopRead context.CancelCauseFunc) {
	err := s.cfg.OnConnect(ctx)
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		s.log.Debug("ARI OnConnect ended with its connection", "err", err)
		return
	}
	stopRead(fmt.Errorf("ari: OnConnect: %w", err))
}

func (s *EventStream) readLoop(ctx context.Context, conn *websocket.Conn, queue chan<- Event) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		s.handleMessage(data, queue)
	}
}

// handleMessage decodes one message and queues it without blocking.
func (s *EventStream) handleMessage(data []byte, queue chan<- Event) {
	event, err := decodeEvent(data)
	if errors.Is(err, ErrMalformedEvent) {
		s.counters.malformed.Add(1)
		s.malformedWarn.warn(s.log, "ARI event skipped", "err", err, "bytes", len(data))
		return
	}
	if err != nil {
		s.malformedWarn.warn(s.log, "ARI event delivered without timestamp", "err", err, "event_type", event.Type)
	}

	select {
	case queue <- event:
		s.counters.events.Add(1)
	default:
		dropped := s.counters.dropped.Add(1)
		s.dropWarn.warn(s.log, "ARI event queue full, event dropped",
			"event_type", event.Type, "queue_size", cap(queue), "dropped_total", dropped)
	}
}

// dispatch calls OnEvent for each queued event until ctx ends.
func (s *EventStream) dispatch(ctx context.Context, queue <-chan Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case event := <-queue:
			s.cfg.OnEvent(event)
		}
	}
}

func (s *EventStream) setUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up, s.since, s.lastErr = true, time.Now(), nil
}

// setDown records the stream as down. err replaces the last error unless
// it is nil.
func (s *EventStream) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		s.up, s.since = false, time.Now()
	}
	if err != nil {
		s.lastErr = err
	}
}

// Connected reports whether the websocket is open.
func (s *EventStream) Connected() bool {
	up, _, _ := s.Status()
	return up
}

// Status returns whether the websocket is open, since when it has been
// open or closed (zero before the first connect), and the error of the
// last failed attempt or disconnect while it is not open.
func (s *EventStream) Status() (up bool, since time.Time, lastErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.since, s.lastErr
}

// Stats returns the counters.
func (s *EventStream) Stats() StreamStats {
	c := &s.counters
	return StreamStats{
		Attempts:     c.attempts.Load(),
		Failures:     c.failures.Load(),
		Connects:     c.connects.Load(),
		Disconnects:  c.disconnects.Load(),
		Events:       c.events.Load(),
		Malformed:    c.malformed.Load(),
		Dropped:      c.dropped.Load(),
		PingFailures: c.pingFailures.Load(),
	}
}

// rateLimitedLog logs a warning at most once per interval and reports how
// many it suppressed in between.
type rateLimitedLog struct {
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimitedLog) warn(log *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()

	log.Warn(msg, append(args, "suppressed", suppressed)...)
}
