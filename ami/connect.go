package ami

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/contactcenter/agentd/internal/backoff"
)

// connectLoop connects and serves until ctx ends. failures counts the
// consecutive attempts that failed, plus one for a lost connection, and
// sets the backoff before the next attempt.
func (c *Client) connectLoop(ctx context.Context, wg *sync.WaitGroup) {
	failures := 0
	var repeats backoff.Repeats
	for {
		cn, err := c.connect(ctx, wg)
		if ctx.Err() != nil {
			if cn != nil {
				cn.close(ErrClosed)
			}
			return
		}
		if err != nil {
			failures++
			c.stats.failures.Add(1)
			c.setDown(err)
			if !repeats.Seen(err) {
				c.log.Warn("AMI connection attempt failed, retrying with backoff", "err", err, "failed_attempts", failures)
			}
			if !backoff.Sleep(ctx, backoff.Delay(c.cfg.BackoffMin, c.cfg.BackoffMax, failures)) {
				return
			}
			continue
		}

		c.setUp(cn, failures)
		failures = 1
		repeats.Reset()
		err = c.serve(ctx, cn, wg)
		if ctx.Err() != nil {
			c.setDown(nil)
			return
		}
		c.stats.disconnects.Add(1)
		c.setDown(err)
		c.log.Warn("AMI connection lost, reconnecting", "err", err)
		if !backoff.Sleep(ctx, backoff.Delay(c.cfg.BackoffMin, c.cfg.BackoffMax, failures)) {
			return
		}
	}
}

// connect dials, reads the banner and logs in. The connection's read loop
// runs in wg from the banner on, so that the Login response is routed like
// any other.
func (c *Client) connect(ctx context.Context, wg *sync.WaitGroup) (*conn, error) {
	c.stats.attempts.Add(1)

	dialer := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := dialer.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, err
	}

	cn := newConn(c, nc)
	version, err := cn.readBanner(ctx, c.cfg.DialTimeout)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	wg.Go(cn.readLoop)

	if err := c.login(ctx, cn); err != nil {
		cn.close(err)
		return nil, err
	}
	c.log.Debug("AMI logged in", "ami_version", version)
	return cn, nil
}

func (c *Client) login(ctx context.Context, cn *conn) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ActionTimeout)
	defer cancel()

	msg := NewAction(ActionLogin,
		"Username", c.cfg.Username,
		"Secret", c.cfg.Secret,
		"Events", c.cfg.Events,
		KeyActionID, c.newActionID())
	resp, _, err := cn.do(ctx, msg, false)
	if err != nil {
		return fmt.Errorf("login as %q: %w", c.cfg.Username, err)
	}
	if !strings.EqualFold(resp.Response(), ResponseValueSuccess) {
		return fmt.Errorf("login as %q: %w", c.cfg.Username, &ResponseError{Action: ActionLogin, Message: resp.Get(KeyMessage)})
	}
	return nil
}

// serve runs the keepalive and OnConnect for a logged-in connection and
// returns when the connection ends or ctx ends. On ctx end it logs off.
func (c *Client) serve(ctx context.Context, cn *conn, wg *sync.WaitGroup) error {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	if c.cfg.OnConnect != nil {
		wg.Go(func() { c.cfg.OnConnect(connCtx) })
	}
	if c.cfg.PingInterval > 0 {
		wg.Go(func() { c.keepalive(connCtx, cn) })
	}

	select {
	case <-cn.done:
		return cn.err()
	case <-ctx.Done():
		cn.logoff(c.newActionID())
		cn.close(ErrClosed)
		return nil
	}
}

// keepalive sends Ping every PingInterval and closes the connection when a
// Ping gets no response, which is how a dead peer without a TCP reset is
// found.
func (c *Client) keepalive(ctx context.Context, cn *conn) {
	ticker := time.NewTicker(c.cfg.PingInterval)
	defer ticker.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}

		pingCtx, cancel := context.WithTimeout(ctx, c.cfg.ActionTimeout)
		_, _, err := cn.do(pingCtx, NewAction(ActionPing, KeyActionID, c.newActionID()), false)
		cancel()
		if err != nil && ctx.Err() == nil {
			cn.close(fmt.Errorf("keepalive Ping failed: %w", err))
			return
		}
	}
}

func (c *Client) setUp(cn *conn, failures int) {
	// Count first, so that a caller that sees Connected also sees the count.
	connects := c.stats.connects.Add(1)

	c.mu.Lock()
	downSince := c.since
	c.conn = cn
	c.since = time.Now()
	c.lastErr = nil
	c.mu.Unlock()

	if connects == 1 {
		c.log.Info("AMI connected", "failed_attempts", failures)
		return
	}
	c.log.Info("AMI connection restored", "failed_attempts", max(failures-1, 0), "down_for", time.Since(downSince).Round(time.Millisecond))
}

func (c *Client) setDown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.conn != nil {
		c.since = time.Now()
	}
	c.conn = nil
	c.lastErr = err
}
