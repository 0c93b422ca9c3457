package events

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/contactcenter/agentd/internal/backoff"
	"github.com/nats-io/nats.go"
)

// errNotConnected is the status error while the client has no connection
// and no connection error is known yet.
var errNotConnected = errors.New("not connected to NATS")

// connStatus is the readiness of the store: up once the client is connected
// and the stream and bucket exist.
type connStatus struct {
	mu      sync.Mutex
	up      bool
	since   time.Time
	lastErr error
	changed chan struct{} // closed and replaced on every change
}

func newConnStatus() *connStatus {
	return &connStatus{since: time.Now(), lastErr: errNotConnected, changed: make(chan struct{})}
}

func (c *connStatus) get() (up bool, since time.Time, lastErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.since, c.lastErr
}

func (c *connStatus) isUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// wait returns a channel closed at the next change.
func (c *connStatus) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *connStatus) setUp() {
	c.set(true, nil)
}

// setDown records err as the reason the store is not ready.
func (c *connStatus) setDown(err error) {
	if err == nil {
		err = errNotConnected
	}
	c.set(false, err)
}

func (c *connStatus) set(up bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up != up {
		c.since = time.Now()
	}
	c.up = up
	c.lastErr = err
	close(c.changed)
	c.changed = make(chan struct{})
}

// connHandlers are the callbacks the store needs from the NATS client.
// nats.go runs them one at a time on its own goroutine.
type connHandlers struct {
	connected    func(url string)
	disconnected func(err error)
	reconnectErr func(err error)
	closed       func()
}

// natsOptions returns the client options for cfg. Authentication and TLS
// apply to external servers and, for user and token, to the embedded one.
func natsOptions(cfg ConnConfig, name string, h connHandlers, log *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		// Without a reconnect buffer, a publish during an outage fails at
		// once and the change goes to the outbox instead of waiting in
		// memory for an acknowledgement that times out.
		nats.ReconnectBufSize(-1),
		// nats.go v1.56 otherwise closes the connection for good after the
		// same authorization error twice, and credentials fixed on the
		// server side would then need an agentd restart.
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(reconnectDelay(cfg.ReconnectWaitMin, cfg.ReconnectWaitMax)),
		nats.ConnectHandler(func(nc *nats.Conn) { h.connected(nc.ConnectedUrlRedacted()) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { h.connected(nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { h.disconnected(err) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { h.reconnectErr(err) }),
		nats.ClosedHandler(func(*nats.Conn) { h.closed() }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("NATS asynchronous error", "subject", subj, "err", err)
		}),
	}
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, auth...), nil
}

func authOptions(cfg ConnConfig) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey seed file %s: %w", ErrInvalidConfig, cfg.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case cfg.CredentialsFile != "":
		if err := readable(cfg.CredentialsFile); err != nil {
			return nil, fmt.Errorf("%w: credentials file: %w", ErrInvalidConfig, err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredentialsFile))
	}

	if cfg.TLSCAFile != "" {
		if err := readable(cfg.TLSCAFile); err != nil {
			return nil, fmt.Errorf("%w: TLS CA file: %w", ErrInvalidConfig, err)
		}
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		if err := errors.Join(readable(cfg.TLSCertFile), readable(cfg.TLSKeyFile)); err != nil {
			return nil, fmt.Errorf("%w: TLS client certificate: %w", ErrInvalidConfig, err)
		}
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	return opts, nil
}

// reconnectDelay returns the wait before reconnect round attempts: a
// random wait below a bound that doubles from minWait up to maxWait.
func reconnectDelay(minWait, maxWait time.Duration) nats.ReconnectDelayHandler {
	return func(attempts int) time.Duration {
		return backoff.Delay(minWait, maxWait, attempts)
	}
}

// readable checks that path can be opened for reading, so that a wrong
// path fails Open instead of every connection attempt.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
