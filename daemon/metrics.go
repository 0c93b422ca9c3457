package daemon

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agi"
)

// metrics holds agentd's Prometheus metrics. Names are documented in
// docs/metrics.md.
type metrics struct {
	registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	amiActions   *prometheus.CounterVec
	amiDuration  *prometheus.HistogramVec
	ariRequests  *prometheus.CounterVec
	ariDuration  *prometheus.HistogramVec
	agiSessions  *prometheus.CounterVec
	agiDuration  *prometheus.HistogramVec

	reconcileRuns    *prometheus.CounterVec
	reconcileChanged prometheus.Counter
}

// latencyBuckets span loopback Asterisk actions (about a millisecond) to
// the request timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.httpRequests = m.counter("agentd_http_requests_total", "HTTP requests served, by route and status code.", "route", "code")
	m.httpDuration = m.histogram("agentd_http_request_duration_seconds", "Time to serve an HTTP request, by route.", "route")
	m.amiActions = m.counter("agentd_ami_actions_total", "AMI actions sent, by action and result (success, rejected, unavailable, error).", "action", "result")
	m.amiDuration = m.histogram("agentd_ami_action_duration_seconds", "Time from sending an AMI action to its response, by action.", "action")
	m.ariRequests = m.counter("agentd_ari_requests_total", "ARI REST requests sent, by request and result (success, rejected, unavailable, error).", "request", "result")
	m.ariDuration = m.histogram("agentd_ari_request_duration_seconds", "Time of an ARI REST request, by request.", "request")
	m.agiSessions = m.counter("agentd_agi_sessions_total", "FastAGI sessions handled, by script and result (OK, ERROR, hangup, failed).", "script", "result")
	m.agiDuration = m.histogram("agentd_agi_session_duration_seconds", "Time to handle a FastAGI session, by script.", "script")
	m.reconcileRuns = m.counter("agentd_reconcile_runs_total", "Reconciliations of Asterisk with the stored sessions, by result (ok, incomplete, failed).", "result")
	m.reconcileChanged = prometheus.NewCounter(prometheus.CounterOpts{Name: "agentd_reconcile_changed_agents_total", Help: "Agents whose Asterisk state a reconciliation had to change."})
	m.registry.MustRegister(m.reconcileChanged)
	for _, result := range []string{"ok", "incomplete", "failed"} {
		m.reconcileRuns.WithLabelValues(result) // export the series from the start, at 0
	}
	return m
}

func (m *metrics) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.registry.MustRegister(c)
	return c
}

func (m *metrics) histogram(name, help string, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets}, labels)
	m.registry.MustRegister(h)
	return h
}

// handler serves /metrics.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// middleware counts API requests by route pattern, so paths with ids do
// not create new series.
func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		// Let the error handler write the response now, so the status code
		// counted is the one sent.
		if err := next(c); err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" || route == "/*" {
			route = "other"
		}
		m.httpRequests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		m.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		return nil
	}
}

// result names the outcome of an Asterisk action for the metrics.
func result(err error) string {
	var asteriskErr *agent.AsteriskError
	switch {
	case err == nil, errors.Is(err, agent.ErrAlreadyMember), errors.Is(err, agent.ErrNotMember):
		// Asterisk already had the state the action asked for.
		return "success"
	case errors.Is(err, agent.ErrAsteriskUnavailable):
		return "unavailable"
	case errors.As(err, &asteriskErr):
		return "rejected"
	default:
		return "error"
	}
}

// observe records one Asterisk action or request. One that got no
// response, such as an action refused at once while AMI is down, is
// counted but not timed, so it cannot pull the durations toward zero.
func observe(count *prometheus.CounterVec, duration *prometheus.HistogramVec, name string, start time.Time, err error) {
	res := result(err)
	count.WithLabelValues(name, res).Inc()
	if res != "unavailable" {
		duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
}

// instrumentedQueues counts and times the AMI actions of an agent.Queues,
// keeping the optional interfaces of the wrapped one.
type instrumentedQueues struct {
	next agent.Queues
	m    *metrics
}

func (q instrumentedQueues) AddMember(ctx context.Context, m agent.Member) error {
	start := time.Now()
	err := q.next.AddMember(ctx, m)
	observe(q.m.amiActions, q.m.amiDuration, "QueueAdd", start, err)
	return err
}

func (q instrumentedQueues) RemoveMember(ctx context.Context, queue, iface string) error {
	start := time.Now()
	err := q.next.RemoveMember(ctx, queue, iface)
	observe(q.m.amiActions, q.m.amiDuration, "QueueRemove", start, err)
	return err
}

func (q instrumentedQueues) PauseMember(ctx context.Context, iface string, paused bool, reason string) error {
	start := time.Now()
	err := q.next.PauseMember(ctx, iface, paused, reason)
	observe(q.m.amiActions, q.m.amiDuration, "QueuePause", start, err)
	return err
}

func (q instrumentedQueues) AddPausedMember(ctx context.Context, m agent.Member, reason string) error {
	adder, ok := q.next.(agent.PausedAdder)
	if !ok {
		return errors.New("queue backend cannot add paused members")
	}
	start := time.Now()
	err := adder.AddPausedMember(ctx, m, reason)
	observe(q.m.amiActions, q.m.amiDuration, "QueueAdd", start, err)
	return err
}

func (q instrumentedQueues) Members(ctx context.Context) ([]agent.MemberState, error) {
	lister, ok := q.next.(agent.MemberLister)
	if !ok {
		return nil, errors.New("queue backend cannot list members")
	}
	start := time.Now()
	members, err := lister.Members(ctx)
	observe(q.m.amiActions, q.m.amiDuration, "QueueStatus", start, err)
	return members, err
}

// instrumentedDevices counts and times the ARI device state requests.
type instrumentedDevices struct {
	next agent.DeviceStates
	m    *metrics
}

func (d instrumentedDevices) SetDeviceState(ctx context.Context, device, state string) error {
	start := time.Now()
	err := d.next.SetDeviceState(ctx, device, state)
	observe(d.m.ariRequests, d.m.ariDuration, "PUT deviceStates", start, err)
	return err
}

// agiScripts are the script names counted by name; others count as
// "unknown", so a caller cannot create series at will.
var agiScripts = map[string]bool{
	agi.ScriptAgentState: true, agi.ScriptAgentLogin: true, agi.ScriptAgentLogout: true,
	agi.ScriptAgentPause: true, agi.ScriptAgentUnpause: true,
}

// observeAGI records one FastAGI session.
func (m *metrics) observeAGI(script, outcome string, elapsed time.Duration) {
	if !agiScripts[script] {
		script = "unknown"
	}
	m.agiSessions.WithLabelValues(script, outcome).Inc()
	m.agiDuration.WithLabelValues(script).Observe(elapsed.Seconds())
}
