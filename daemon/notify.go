package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/contactcenter/agentd/agent"
)

// statusInterval is how often the STATUS= line is refreshed when no
// watchdog asks for more frequent pings.
const statusInterval = 2 * time.Second

// notifyReady sends READY=1 to systemd once agentd serves, then keeps STATUS= current
// and pings the watchdog until ctx ends. Without NOTIFY_SOCKET it does
// nothing, so agentd runs the same outside systemd.
func (d *Daemon) notifyReady(ctx context.Context) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		// Not run by systemd: no status line to keep current.
		return
	}
	d.sdNotify(sd.SdNotifyReady + "\n" + d.statusLine())

	interval := statusInterval
	watchdog, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		d.log.Warn("invalid watchdog settings from systemd; watchdog pings are off", "err", err)
	}
	if watchdog > 0 {
		interval = min(interval, watchdog/2)
		d.log.Info("systemd watchdog enabled", "timeout", watchdog, "ping_interval", interval)
	}

	d.loops.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			msgs := []string{}
			if watchdog > 0 {
				msgs = append(msgs, sd.SdNotifyWatchdog)
			}
			if status := d.statusLine(); status != last {
				msgs = append(msgs, status)
				last = status
			}
			if len(msgs) > 0 {
				d.sdNotify(strings.Join(msgs, "\n"))
			}
		}
	})
}

// statusLine returns STATUS= with the state of each connection.
func (d *Daemon) statusLine() string {
	parts := make([]string, 0, 3)
	for _, dep := range d.dependencies() {
		up, _, _ := dep.status()
		state := "down"
		if up {
			state = "up"
		}
		parts = append(parts, dep.name+" "+state)
	}
	return fmt.Sprintf("STATUS=%s; %d agents logged in", strings.Join(parts, ", "), d.loggedIn())
}

// loggedIn counts agents that are logged in.
func (d *Daemon) loggedIn() int {
	n := 0
	d.service.RangeSessions(func(s *agent.Session) {
		if s.LoggedIn() {
			n++
		}
	})
	return n
}

func (d *Daemon) sdNotify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		d.log.Warn("systemd notification failed", "err", err)
	}
}
