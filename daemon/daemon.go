// Package daemon wires agentd together: it loads the configuration, builds
// the Asterisk clients, the session store, the use cases and the servers,
// and starts and stops them in order.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agi"
	"github.com/contactcenter/agentd/ami"
	"github.com/contactcenter/agentd/ari"
	"github.com/contactcenter/agentd/events"
	"github.com/contactcenter/agentd/httpapi"
)

// restoreWait is how long start waits for the stored sessions before
// serving without them.
const restoreWait = 3 * time.Second

// Options holds the inputs of Run from main.
type Options struct {
	ConfigPath string
	Config     Config
	Logger     *slog.Logger
	Level      *slog.LevelVar // changed by a reload; may be nil
	// Reload receives a value for each SIGHUP.
	Reload <-chan os.Signal
}

// Daemon is one running agentd.
type Daemon struct {
	cfg  Config
	path string
	log  *slog.Logger
	lvl  *slog.LevelVar

	metrics *metrics
	store   *events.Store
	// ami is the AMI event client, which readiness and the reconciler
	// follow. amiPool contains it and the action-only clients.
	ami     *ami.Client
	amiPool *ami.Pool
	ari     *ari.Client
	stream  *ari.EventStream
	service *agent.Service
	api     *httpapi.Server
	http    *http.Server
	agi     *agi.Server
	httpLn  net.Listener
	agiLn   net.Listener
	debug   *debugServer // nil unless debug.listen is set
	cancel  context.CancelFunc
	loops   sync.WaitGroup

	reconcileNow chan struct{}
	ariSeen      ariSeen      // channels and endpoints ARI events reported during a resync
	fatal        chan error   // a connection loop that ended for good
	stopping     atomic.Bool  // set when Stop begins
	lastStartup  atomic.Int64 // Asterisk startup time seen by ARI, Unix ns
	started      time.Time    // when Start began
	restoredAt   atomic.Pointer[time.Time]
	stopOnce     sync.Once
	stopErr      error
}

// Run starts agentd, reloads on each value from opts.Reload, and stops
// gracefully when ctx ends.
func Run(ctx context.Context, opts Options) error {
	d, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
			defer cancel()
			return d.Stop(stopCtx)
		case err := <-d.fatal:
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
			defer cancel()
			return errors.Join(err, d.Stop(stopCtx))
		case _, ok := <-opts.Reload:
			if !ok {
				opts.Reload = nil // a closed channel would reload in a loop
				continue
			}
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the configuration in force stays", "err", err)
			}
		}
	}
}

// Start builds every part and starts serving. On error, what was already
// started is stopped again.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	d := &Daemon{cfg: opts.Config, path: opts.ConfigPath, log: opts.Logger, lvl: opts.Level,
		reconcileNow: make(chan struct{}, 1), fatal: make(chan error, 1), started: time.Now()}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := d.start(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
		defer cancel()
		return nil, errors.Join(err, d.Stop(stopCtx))
	}
	return d, nil
}

func (d *Daemon) start(ctx context.Context) error {
	dir, err := agent.LoadDirectory(d.cfg.Directory)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data_dir: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	d.metrics = newMetrics()

	if d.store, err = events.Open(ctx, d.eventsConfig(), d.log.With("component", "events")); err != nil {
		return fmt.Errorf("open session store: %w", err)
	}
	if err := d.newAsterisk(); err != nil {
		return err
	}
	d.service, err = agent.NewService(agent.Config{
		Directory:         dir,
		Queues:            instrumentedQueues{next: ami.NewQueues(d.amiPool), m: d.metrics},
		DeviceStates:      instrumentedDevices{next: ari.NewDeviceStates(d.ari), m: d.metrics},
		Store:             d.store,
		StateMap:          d.cfg.StateMap(),
		Logger:            d.log.With("component", "agent"),
		AutopausePauseID:  d.cfg.Reconcile.AutopausePauseID,
		ExternalPauseID:   d.cfg.Reconcile.ExternalPauseID,
		MemberPolicy:      agent.MemberPolicy(d.cfg.Reconcile.MemberPolicy),
		UnavailableLogout: d.cfg.Reconcile.UnavailableLogout,
		RestoreRequired:   true,
	})
	if err != nil {
		return err
	}
	d.metrics.registry.MustRegister(newStateCollector(d))
	// The connection loops start once the service exists, because their
	// events and the reconciliation after connecting need it.
	d.startReconciler(runCtx)
	d.goLoop("ami", func() error { return d.amiPool.Run(runCtx) })
	d.goLoop("ari events", func() error { return d.stream.Run(runCtx) })

	if err := d.startHTTP(runCtx); err != nil {
		return err
	}
	if err := d.startAGI(runCtx); err != nil {
		return err
	}
	if err := d.startDebug(runCtx); err != nil {
		return err
	}
	// An embedded or reachable NATS responds at once. An unreachable one is
	// waited for in the background while HTTP and FastAGI serve.
	quick, cancelQuick := context.WithTimeout(ctx, restoreWait)
	n, err := d.service.Restore(quick)
	cancelQuick()
	if err == nil {
		d.markRestored()
		d.log.Info("sessions restored", "sessions", n, "agents", dir.Len())
	} else {
		d.log.Warn("sessions not restored yet; requests fail with store_unavailable until NATS responds", "err", err)
		d.loops.Go(func() { d.restore(runCtx) })
	}
	d.notifyReady(runCtx)
	d.log.Info("agentd started", "version", Version(), "http", d.httpLn.Addr().String(), "agi", d.agiAddr(),
		"ami", d.cfg.AMI.Address, "ari", d.cfg.ARI.URL, "nats", d.natsTarget())
	return nil
}

// newAsterisk builds the AMI clients and the ARI client and event stream.
// Once running they connect and reconnect on their own; requests fail with
// asterisk_unavailable until they are up.
func (d *Daemon) newAsterisk() error {
	d.ami = ami.New(ami.Config{
		Addr:     d.cfg.AMI.Address,
		Username: d.cfg.AMI.Username,
		Secret:   d.cfg.AMI.Password,
		// agent: queue member events; system: FullyBooted.
		Events:        "agent,system",
		ActionTimeout: d.cfg.AMI.ActionTimeout,
		PingInterval:  d.cfg.AMI.PingInterval,
		BackoffMax:    d.cfg.AMI.ReconnectMax,
		Logger:        d.log.With("component", "ami"),
		OnEvent:       d.onAMIEvent,
	})
	d.amiPool = ami.NewPool(d.ami, d.cfg.AMI.Connections)
	var err error
	d.ari, err = ari.NewClient(ari.Config{
		URL:            d.cfg.ARI.URL,
		Username:       d.cfg.ARI.Username,
		Password:       d.cfg.ARI.Password,
		Application:    d.cfg.ARI.Application,
		RequestTimeout: d.cfg.ARI.RequestTimeout,
		Logger:         d.log.With("component", "ari"),
	})
	if err != nil {
		return err
	}
	d.stream, err = ari.NewEventStream(d.ari, ari.EventStreamConfig{
		Application: d.cfg.ARI.Application,
		OnConnect:   d.onARIConnect,
		OnEvent:     d.onARIEvent,
		BackoffMax:  d.cfg.ARI.ReconnectMax,
	})
	return err
}

// goLoop runs a connection loop until the daemon stops. A loop that ends
// by itself cannot recover, such as on a configuration Asterisk's client
// rejects, so it stops the daemon instead of leaving it half alive.
func (d *Daemon) goLoop(name string, run func() error) {
	d.loops.Go(func() {
		err := run()
		if err == nil || errors.Is(err, context.Canceled) || d.stopping.Load() {
			return
		}
		d.log.Error("connection loop ended; stopping agentd", "loop", name, "err", err)
		select {
		case d.fatal <- fmt.Errorf("%s: %w", name, err):
		default:
		}
	})
}

// restore loads the stored sessions, waiting for NATS as long as it takes.
// Requests fail with store_unavailable until then, while HTTP and FastAGI
// already serve and /readyz shows NATS down.
func (d *Daemon) restore(ctx context.Context) {
	start := time.Now()
	n, err := d.service.Restore(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("restoring sessions failed; requests fail until agentd restarts", "err", err)
		}
		return
	}
	d.markRestored()
	d.log.Info("sessions restored", "sessions", n, "agents", d.service.Directory().Len(), "waited", time.Since(start).Round(time.Millisecond))
	d.triggerReconcile()
}

func (d *Daemon) startHTTP(ctx context.Context) error {
	auth, err := d.authConfig()
	if err != nil {
		return err
	}
	d.api, err = httpapi.New(httpapi.Config{
		Service:        d.service,
		Directory:      d.service.Directory,
		Auth:           auth,
		MaxBodyBytes:   d.cfg.HTTP.MaxBodyBytes,
		RequestTimeout: d.cfg.HTTP.RequestTimeout,
		AllowedOrigins: d.cfg.HTTP.CORS.AllowedOrigins,
		Logger:         d.log.With("component", "http"),
	})
	if err != nil {
		return err
	}
	e := d.api.Echo()
	e.Use(d.metrics.middleware)
	if origins := d.cfg.HTTP.CORS.AllowedOrigins; len(origins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:     origins,
			AllowMethods:     []string{http.MethodPost},
			AllowHeaders:     []string{"Authorization", "Content-Type", "Accept-Language", "X-Request-Id"},
			AllowCredentials: true,
			MaxAge:           600,
		}))
	}
	e.GET("/healthz", echoHandler(healthzHandler))
	e.GET("/readyz", echoHandler(readyzHandler(d.dependencies())))
	e.GET("/metrics", echo.WrapHandler(d.metrics.handler()))

	d.httpLn, err = net.Listen("tcp", d.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", d.cfg.HTTP.Listen, err)
	}
	d.http = &http.Server{
		Handler:           d.api.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln := d.httpLn
	d.loops.Go(func() {
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("HTTP server failed", "err", err)
		}
	})
	return nil
}

func (d *Daemon) authConfig() (httpapi.AuthConfig, error) {
	auth := httpapi.AuthConfig{Basic: d.cfg.HTTP.Auth.Basic}
	j := d.cfg.HTTP.Auth.JWT
	if j.Algorithm == "" {
		return auth, nil
	}
	jwt := &httpapi.JWTConfig{
		Algorithm:  j.Algorithm,
		Secret:     []byte(j.Secret),
		AgentClaim: j.AgentClaim,
		Issuer:     j.Issuer,
		Audience:   j.Audience,
		Leeway:     j.Leeway,
		RequireExp: j.RequireExp,
	}
	if j.PublicKeyFile != "" {
		pem, err := os.ReadFile(j.PublicKeyFile)
		if err != nil {
			return auth, fmt.Errorf("http.auth.jwt.public_key_file: %w", err)
		}
		jwt.PublicKeyPEM = pem
	}
	auth.JWT = jwt
	return auth, nil
}

func (d *Daemon) startAGI(ctx context.Context) error {
	if d.cfg.AGI.Listen == "" {
		return nil
	}
	allow := make([]netip.Prefix, 0, len(d.cfg.AGI.Allow))
	for _, cidr := range d.cfg.AGI.Allow {
		allow = append(allow, netip.MustParsePrefix(cidr)) // validated by LoadConfig
	}
	var err error
	d.agi, err = agi.NewServer(agi.Config{
		Addr:        d.cfg.AGI.Listen,
		Allow:       allow,
		MaxSessions: d.cfg.AGI.MaxSessions,
		Logger:      d.log.With("component", "agi"),
		OnSession:   d.metrics.observeAGI,
	}, d.service)
	if err != nil {
		return err
	}
	d.agiLn, err = agi.Listen(ctx, d.cfg.AGI.Listen)
	if err != nil {
		return fmt.Errorf("agi.listen %s: %w", d.cfg.AGI.Listen, err)
	}
	ln := d.agiLn
	d.loops.Go(func() {
		if err := d.agi.Serve(ctx, ln); err != nil && !errors.Is(err, agi.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			d.log.Error("FastAGI server failed", "err", err)
		}
	})
	return nil
}

// Stop shuts down in reverse order of start: HTTP and FastAGI stop taking
// requests and let those in flight finish, and the debug server ends its
// profiles in flight. Then the Asterisk connections close, then the store
// flushes. It is safe to call more than once.
func (d *Daemon) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		d.stopping.Store(true)
		d.log.Info("agentd stopping")
		d.sdNotify(sd.SdNotifyStopping)
		errs := []error{d.shutdownServers(ctx)}
		if d.cancel != nil {
			d.cancel()
		}
		if d.service != nil {
			d.service.Close()
		}
		if d.amiPool != nil {
			errs = append(errs, d.amiPool.Close())
		}
		d.loops.Wait()
		if d.ari != nil {
			d.ari.Close()
		}
		if d.store != nil {
			errs = append(errs, d.store.Close(ctx))
		}
		d.stopErr = errors.Join(errs...)
		d.log.Info("agentd stopped", "err", d.stopErr)
	})
	return d.stopErr
}

// shutdownServers shuts HTTP, FastAGI and the debug server down together,
// so that their listeners close at once and none takes new work while
// another drains, and waits for all of them.
func (d *Daemon) shutdownServers(ctx context.Context) error {
	var wg sync.WaitGroup
	var httpErr, agiErr, debugErr error
	if d.http != nil {
		wg.Go(func() { httpErr = d.http.Shutdown(ctx) })
	}
	if d.agi != nil {
		wg.Go(func() { agiErr = d.agi.Shutdown(ctx) })
	}
	if d.debug != nil {
		wg.Go(func() { debugErr = d.debug.shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(httpErr, agiErr, debugErr)
}

// Reload re-reads the directory and the log level. Sessions are kept. An
// invalid file is rejected and what is in force stays.
func (d *Daemon) Reload() error {
	cfg, err := LoadConfig(d.path, os.Environ())
	if err != nil {
		return err
	}
	dir, err := agent.LoadDirectory(cfg.Directory)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	removed, err := d.service.Reload(ctx, dir)
	if len(removed) > 0 {
		d.log.Info("logged out agents removed from the directory", "agents", removed)
	}
	if err != nil {
		d.log.Error("logging out agents removed from the directory failed; the next reload tries again", "err", err)
	}
	if d.lvl != nil {
		d.lvl.Set(parseLevel(cfg.Log.Level))
	}
	d.log.Info("reloaded", "directory", cfg.Directory, "agents", dir.Len(), "pauses", len(dir.Pauses()), "log_level", cfg.Log.Level)
	return nil
}

// Service returns the use cases, for tests.
func (d *Daemon) Service() *agent.Service { return d.service }

// HTTPAddr returns the address the HTTP API listens on.
func (d *Daemon) HTTPAddr() net.Addr { return d.httpLn.Addr() }

// Routes returns the HTTP routes served, each as "METHOD path", such as
// "POST /api/v1/asterisk_login/". echo's not-found routes are left out.
func (d *Daemon) Routes() []string {
	var out []string
	for _, r := range d.api.Echo().Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return out
}

func (d *Daemon) agiAddr() string {
	if d.agiLn == nil {
		return "disabled"
	}
	return d.agiLn.Addr().String()
}

// AGIAddr returns the address the FastAGI server listens on, or nil.
func (d *Daemon) AGIAddr() net.Addr {
	if d.agiLn == nil {
		return nil
	}
	return d.agiLn.Addr()
}

func (d *Daemon) dependencies() []dependency {
	return []dependency{
		{name: "ami", status: d.ami.Status},
		{name: "ari", status: d.stream.Status},
		{name: "nats", status: d.store.Status},
		{name: dependencySessions, status: d.sessionsStatus},
	}
}

// dependencySessions is the /readyz entry of the stored sessions. It is
// not a connection, so /metrics reports it as agentd_sessions_restored.
const dependencySessions = "sessions"

// errSessionsNotRestored is the last error of the "sessions" entry of
// /readyz until the stored sessions are read.
var errSessionsNotRestored = errors.New("stored sessions not read yet; requests get store_unavailable until NATS responds")

// sessionsStatus reports whether the stored sessions are restored, since
// when, or since agentd started while they are not.
func (d *Daemon) sessionsStatus() (up bool, since time.Time, lastErr error) {
	if at := d.restoredAt.Load(); at != nil {
		return true, *at, nil
	}
	return false, d.started, errSessionsNotRestored
}

// markRestored records that the stored sessions are restored.
func (d *Daemon) markRestored() {
	now := time.Now()
	d.restoredAt.Store(&now)
}

func (d *Daemon) natsTarget() string {
	if len(d.cfg.NATS.URLs) == 0 {
		return "embedded " + d.cfg.NATS.Embedded.Listen
	}
	return fmt.Sprint(d.cfg.NATS.URLs)
}
