package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/bench/latency"
	"github.com/contactcenter/agentd/internal/bench/rawami"
)

// Queue count whose login figures have targets.
const loginTargetQueues = 10

// Targets of the login with 10 queues: agentd's p50 at most 1.5 times the
// best pipelined reference, and the connection-per-request pattern at
// least twice as slow as agentd.
const (
	loginTargetVsLimit      = 1.5
	loginTargetVsPerRequest = 2.0
)

// Pool sizes of the pipelined reference besides a single connection.
var loginPoolSizes = []int{2, 4}

// Member numbers of the login scenario: agentd's agent for k queues is
// bench<100+k>, and each reference client adds its own interface.
const (
	loginAgentBase     = 100
	loginPipelinedBase = 200 // +100 for each pool size in turn
	loginPerRequest    = 900
)

// loginClient is one way of adding an agent to its queues. add is timed;
// cleanup, which removes the members again, is not.
type loginClient struct {
	label   string
	rec     latency.Recorder
	add     func() error
	cleanup func() error
}

func runLogin(ctx context.Context, opts options, sb *sandbox, r *report, log *slog.Logger) error {
	var agents []benchAgent
	for _, k := range opts.loginQueues {
		a, err := newAgents(loginAgentBase+k, 1, func(int) []string { return queueNames(k) })
		if err != nil {
			return err
		}
		agents = append(agents, a...)
	}
	d, err := startAgentd(ctx, sb, agents, log)
	if err != nil {
		return err
	}
	defer d.stop()
	defer func() {
		if err := sb.deleteDeviceStates(context.WithoutCancel(ctx), d.client, agents); err != nil {
			log.Error("deleting the Stasis devices of the login scenario failed", "err", err)
		}
	}()
	defer d.reportDropped(ctx, r)

	cleanup, err := sb.dial("off")
	if err != nil {
		return err
	}
	defer cleanup.Close()

	r.linef("  %d measured logins per client after %d unmeasured, clients interleaved in rotating order; logout and QueueRemove are not timed",
		opts.loginIterations, opts.loginWarmup)
	floor, err := httpFloor(ctx, d.client, agents[0], opts.loginIterations)
	if err != nil {
		return err
	}
	r.latency("plain net/http POST round trip (HTTP floor)", floor)
	idle, err := d.repeat(ctx, agents[0], routeLogout, "OFFLINE", opts.loginIterations)
	if err != nil {
		return err
	}
	r.latency("agentd HTTP logout of a logged-out agent (no I/O)", idle)
	return profiled("login", func() error {
		for i, k := range opts.loginQueues {
			if err := loginQueueCount(ctx, opts, sb, r, d, agents[i], cleanup, k); err != nil {
				return err
			}
		}
		return nil
	})
}

func queueNames(k int) []string {
	names := make([]string, k)
	for i := range names {
		names[i] = queueName(i)
	}
	return names
}

func loginQueueCount(ctx context.Context, opts options, sb *sandbox, r *report, d *agentd, ag benchAgent, cleanup *rawami.Conn, k int) error {
	clients, closeAll, err := loginClients(ctx, sb, d, ag, cleanup, k)
	if err != nil {
		return err
	}
	defer closeAll()

	var connect latency.Recorder
	perRequest := clients[len(clients)-1]
	perRequest.add = func() error { return addPerRequest(sb, k, &connect, ag.memberName()) }

	for i := range opts.loginWarmup + opts.loginIterations {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The client after another's cleanup meets Asterisk still sending
		// that cleanup's member events, so the order rotates and each
		// client takes each place equally often.
		for j := range clients {
			c := clients[(i+j)%len(clients)]
			start := time.Now()
			if err := c.add(); err != nil {
				return fmt.Errorf("%d queues, %s: %w", k, c.label, err)
			}
			elapsed := time.Since(start)
			if err := c.cleanup(); err != nil {
				return fmt.Errorf("%d queues, %s cleanup: %w", k, c.label, err)
			}
			if i >= opts.loginWarmup {
				c.rec.Add(elapsed)
			}
		}
	}
	reportLogin(r, clients, k)
	r.latency("  of which a new connection and Login", connect.Summary())
	return nil
}

// loginClients returns agentd over HTTP, agentd's use case called
// directly, the ARI request alone, the pipelined references, and last the
// connection-per-request reference, whose add the caller sets.
func loginClients(ctx context.Context, sb *sandbox, d *agentd, ag benchAgent, cleanup *rawami.Conn, k int) ([]*loginClient, func(), error) {
	var pools []rawami.Pool
	closeAll := func() {
		for _, p := range pools {
			p.Close()
		}
	}
	clients := []*loginClient{{
		label:   fmt.Sprintf("agentd HTTP login, %d queues", k),
		add:     func() error { return d.post(ctx, ag, routeLogin, "READY") },
		cleanup: func() error { return d.post(ctx, ag, routeLogout, "OFFLINE") },
	}, {
		// The use case alone, to tell the HTTP layer from the rest.
		label:   "  agentd Service.Login without HTTP",
		add:     func() error { return serviceCall(d.d.Service().Login(ctx, ag.id, agent.SourceAPI)) },
		cleanup: func() error { return serviceCall(d.d.Service().Logout(ctx, ag.id, agent.SourceAPI)) },
	}, {
		// The device state request agentd sends after the QueueAdds.
		label:   "  ARI PUT deviceStates alone",
		add:     func() error { return sb.setDeviceState(ctx, d.client, "Stasis:agent-"+ag.id, "NOT_INUSE") },
		cleanup: func() error { return sb.setDeviceState(ctx, d.client, "Stasis:agent-"+ag.id, "UNAVAILABLE") },
	}}

	for i, size := range append([]int{1}, loginPoolSizes...) {
		pool, err := rawami.DialPool(size, sb.amiAddr, sb.amiUser, sb.amiSecret, "off", amiTimeout)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		pools = append(pools, pool)
		actions := queueAdds(k, memberInterface(loginPipelinedBase+100*i+k), ag.memberName())
		members := membersOf(actions)
		clients = append(clients, &loginClient{
			label:   fmt.Sprintf("(a) pipelined QueueAdd, %d connection(s)", size),
			add:     func() error { return checkResponses(pool.Send(amiTimeout, actions...)) },
			cleanup: func() error { return removeMembers(cleanup, members) },
		})
	}

	members := membersOf(queueAdds(k, memberInterface(loginPerRequest+k), ""))
	clients = append(clients, &loginClient{
		label:   "(b) new connection, QueueAdd one by one",
		cleanup: func() error { return removeMembers(cleanup, members) },
	})
	return clients, closeAll, nil
}

// queueAdds returns the QueueAdd actions agentd sends to add iface to the
// first k bench queues, with the same keys in the same order.
func queueAdds(k int, iface, memberName string) []rawami.Action {
	actions := make([]rawami.Action, k)
	for i := range actions {
		actions[i] = rawami.NewAction("QueueAdd", "Queue", queueName(i), "Interface", iface,
			"Penalty", "0", "Paused", "false", "MemberName", memberName)
	}
	return actions
}

func membersOf(actions []rawami.Action) []member {
	out := make([]member, len(actions))
	for i, a := range actions {
		out[i] = member{queue: a.Headers[0].Value, iface: a.Headers[1].Value}
	}
	return out
}

// addPerRequest is the pattern of integrations that open an AMI session
// per request: connect, log in, send the actions one after another, log
// off.
func addPerRequest(sb *sandbox, k int, connect *latency.Recorder, memberName string) error {
	start := time.Now()
	conn, err := sb.dialAgentdUser()
	if err != nil {
		return err
	}
	connect.Since(start)
	defer conn.Close()
	for _, a := range queueAdds(k, memberInterface(loginPerRequest+k), memberName) {
		if err := checkResponses(conn.Send(amiTimeout, a)); err != nil {
			return err
		}
	}
	conn.Logoff()
	return nil
}

func serviceCall(_ agent.Result, err error) error {
	return err
}

func checkResponses(resp []rawami.Message, err error) error {
	if err != nil {
		return err
	}
	for i, m := range resp {
		if m.IsError() {
			return fmt.Errorf("action %d of %d failed: %s", i+1, len(resp), m["Message"])
		}
	}
	return nil
}

func reportLogin(r *report, clients []*loginClient, k int) {
	summaries := make([]latency.Summary, len(clients))
	for i, c := range clients {
		summaries[i] = c.rec.Summary()
		r.latency(c.label, summaries[i])
	}
	agentd, perRequest := summaries[0], summaries[len(summaries)-1]
	best := summaries[3]
	for _, s := range summaries[4 : len(summaries)-1] {
		if s.P50 < best.P50 {
			best = s
		}
	}
	limitTarget, perRequestTarget := 0.0, 0.0
	if k == loginTargetQueues {
		limitTarget, perRequestTarget = loginTargetVsLimit, loginTargetVsPerRequest
	}
	suffix := " (" + strconv.Itoa(k) + " queues)"
	r.ratio("agentd p50 / best (a) p50"+suffix, float64(agentd.P50), float64(best.P50), true, limitTarget)
	r.ratio("(b) p50 / agentd p50"+suffix, float64(perRequest.P50), float64(agentd.P50), false, perRequestTarget)
}

// httpFloor measures requests like agentd's against a net/http server that
// only returns a short JSON body: the least any HTTP API costs here.
func httpFloor(ctx context.Context, client *http.Client, ag benchAgent, count int) (latency.Summary, error) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"OK","state":"READY"}`)
	}))
	defer srv.Close()
	floor := &agentd{base: srv.URL, client: client}
	return floor.repeat(ctx, ag, routeLogin, "READY", count)
}

// repeat sends the same request count times, one at a time, and measures
// each.
func (a *agentd) repeat(ctx context.Context, ag benchAgent, route, expectState string, count int) (latency.Summary, error) {
	var rec latency.Recorder
	for range count {
		start := time.Now()
		if err := a.post(ctx, ag, route, expectState); err != nil {
			return latency.Summary{}, err
		}
		rec.Since(start)
	}
	return rec.Summary(), nil
}
