package ami

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultAddr           = "127.0.0.1:5038"
	DefaultDialTimeout    = 5 * time.Second
	DefaultActionTimeout  = 5 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultEventQueueSize = 8192
)

// Config configures a Client. Zero fields take the defaults named on them.
type Config struct {
	// Addr is the host:port of the Asterisk AMI listener. Default
	// DefaultAddr.
	Addr string
	// Username and Secret are the credentials of a manager.conf user.
	// Username is required. The secret is never logged.
	Username string
	Secret   string
	// Events is the Events value of the Login action: "on", "off" or a
	// comma-separated list of event classes such as "agent,system".
	// Default "on" when OnEvent is set, else "off".
	Events string

	// DialTimeout bounds the TCP connect and the wait for the banner.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration
	// ActionTimeout is the deadline of every action (Login included) whose
	// context has no earlier one. Default DefaultActionTimeout.
	ActionTimeout time.Duration
	// PingInterval is the time between keepalive Ping actions. A Ping
	// without a response within ActionTimeout closes the connection, which
	// then reconnects. Default DefaultPingInterval. Negative disables the
	// keepalive.
	PingInterval time.Duration
	// BackoffMin and BackoffMax bound the wait before a reconnect attempt.
	// The bound doubles with each consecutive failure, from BackoffMin up
	// to BackoffMax, and the wait is uniformly random below it ("full
	// jitter"). Defaults DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration

	// EventQueueSize is the number of events buffered for OnEvent. When the
	// queue is full, new events are dropped, counted in Stats and logged.
	// Default DefaultEventQueueSize, 8192. With 1024, agentd dropped about
	// 1,200 events while another AMI client added 5,000 members pipelined
	// on one connection (make bench, shift scenario, Asterisk 22.10.1 on 2
	// CPUs). Asterisk wrote the events faster than the dispatch goroutine
	// took them. A queued QueueMemberPause event takes 928 bytes
	// (BenchmarkReadMessage), so a full queue holds about 7.6 MB.
	EventQueueSize int
	// Limits bounds the lines and fields of messages read from Asterisk.
	// A breach closes the connection.
	Limits Limits

	// Logger receives connection state changes and errors. Default
	// slog.Default().
	Logger *slog.Logger

	// OnEvent receives every event that is not part of an ActionList
	// reply, in arrival order, from one goroutine. It must not block for
	// long, because events arriving meanwhile wait in a bounded queue.
	OnEvent func(Message)
	// OnConnect is called in its own goroutine after each successful
	// login, so that the caller can resynchronise state. Its context is
	// canceled when that connection ends. Run waits for it to return.
	OnConnect func(ctx context.Context)
}

func (cfg Config) withDefaults() Config {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Events == "" {
		cfg.Events = "off"
		if cfg.OnEvent != nil {
			cfg.Events = "on"
		}
	}
	cfg.DialTimeout = durationOr(cfg.DialTimeout, DefaultDialTimeout)
	cfg.ActionTimeout = durationOr(cfg.ActionTimeout, DefaultActionTimeout)
	cfg.PingInterval = durationOr(cfg.PingInterval, DefaultPingInterval)
	cfg.BackoffMin = durationOr(cfg.BackoffMin, DefaultBackoffMin)
	cfg.BackoffMax = durationOr(cfg.BackoffMax, DefaultBackoffMax)
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	if cfg.EventQueueSize <= 0 {
		cfg.EventQueueSize = DefaultEventQueueSize
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

func durationOr(d, fallback time.Duration) time.Duration {
	if d == 0 {
		return fallback
	}
	return d
}

func (cfg Config) validate() error {
	if cfg.Username == "" {
		return fmt.Errorf("%w: Username is empty", ErrInvalidConfig)
	}
	if cfg.DialTimeout < 0 || cfg.ActionTimeout < 0 || cfg.BackoffMin < 0 {
		return fmt.Errorf("%w: DialTimeout, ActionTimeout and BackoffMin must not be negative", ErrInvalidConfig)
	}
	for _, f := range []Field{{"Username", cfg.Username}, {"Secret", cfg.Secret}, {"Events", cfg.Events}} {
		if err := ValidateField(f.Key, f.Value); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// Stats are counters of a Client since New.
type Stats struct {
	Attempts          uint64 // connection attempts: dial, banner and login
	Failures          uint64 // attempts that failed
	Connects          uint64 // successful logins
	Reconnects        uint64 // successful logins after the first
	Disconnects       uint64 // logged-in connections lost, not counting Close
	EventsReceived    uint64 // events routed to OnEvent, dropped ones included
	EventsDropped     uint64 // events dropped because the event queue was full
	MalformedMessages uint64 // messages skipped because of a malformed line
}

type counters struct {
	attempts, failures, connects, disconnects atomic.Uint64
	eventsReceived, eventsDropped, malformed  atomic.Uint64
}

// Client is an AMI client with one persistent connection. Create it with
// New, start it with Run, send actions with Action and ActionList from any
// goroutine, and stop it with Close or by canceling the context of Run.
type Client struct {
	cfg      Config
	log      *slog.Logger
	idPrefix string
	nextID   atomic.Uint64
	stats    counters
	events   chan Message
	dropping atomic.Bool
	// inFlight counts the calls of Action and ActionList waiting for a
	// response. Pool sends each action on the client with the fewest.
	inFlight atomic.Int64

	mu      sync.Mutex
	conn    *conn // the logged-in connection, nil while down
	since   time.Time
	lastErr error
	running bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when the active Run returns
}

// New returns a Client for cfg. It does not connect; Run does.
func New(cfg Config) *Client {
	cfg = cfg.withDefaults()
	return &Client{
		cfg:      cfg,
		log:      cfg.Logger.With("addr", cfg.Addr),
		idPrefix: "agentd-" + strconv.FormatUint(uint64(rand.Uint32()), 16),
		events:   make(chan Message, cfg.EventQueueSize),
		since:    time.Now(),
	}
}

// Run connects, logs in and keeps the connection up, reconnecting with
// backoff after any failure, until ctx ends or Close is called. It then
// logs off, waits for its goroutines and the OnConnect calls to return, and
// returns nil. It returns an error at once for an invalid Config, after
// Close (ErrClosed) or while another Run is active (ErrRunning).
func (c *Client) Run(ctx context.Context) error {
	if err := c.cfg.validate(); err != nil {
		return err
	}
	ctx, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer c.end()

	c.log.Info("AMI client starting", "username", c.cfg.Username)
	var wg sync.WaitGroup
	if c.cfg.OnEvent != nil {
		wg.Go(func() { c.dispatchEvents(ctx) })
	}
	c.connectLoop(ctx, &wg)
	wg.Wait()
	c.log.Info("AMI client stopped")
	return nil
}

func (c *Client) begin(parent context.Context) (context.Context, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.closed {
		return nil, ErrClosed
	}
	if c.running {
		return nil, ErrRunning
	}
	ctx, cancel := context.WithCancel(parent)
	c.running = true
	c.cancel = cancel
	c.done = make(chan struct{})
	return ctx, nil
}

func (c *Client) end() {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.cancel()
	c.running = false
	c.cancel = nil
	close(c.done)
}

// Close stops Run and waits for it to return. Later calls to Run return
// ErrClosed. Close is safe to call more than once and before Run, but not
// from OnEvent or OnConnect, because Run waits for those to return.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cancel, done := c.cancel, c.done
	running := c.running
	c.mu.Unlock()

	if running {
		cancel()
		<-done
	}
	return nil
}

// Connected reports whether a logged-in connection is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Status returns whether a logged-in connection is up, since when that
// state holds, and the error that ended the last connection or failed the
// last attempt. lastErr is nil while up.
func (c *Client) Status() (up bool, since time.Time, lastErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil, c.since, c.lastErr
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	connects := c.stats.connects.Load()
	return Stats{
		Attempts:          c.stats.attempts.Load(),
		Failures:          c.stats.failures.Load(),
		Connects:          connects,
		Reconnects:        max(connects, 1) - 1,
		Disconnects:       c.stats.disconnects.Load(),
		EventsReceived:    c.stats.eventsReceived.Load(),
		EventsDropped:     c.stats.eventsDropped.Load(),
		MalformedMessages: c.stats.malformed.Load(),
	}
}

func (c *Client) current() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *Client) newActionID() string {
	return c.idPrefix + "-" + strconv.FormatUint(c.nextID.Add(1), 10)
}
