package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/contactcenter/agentd/agent"
)

// stateCollector reads connection states, reconnect counters, agent states,
// event and FastAGI counters from the running parts at scrape time.
type stateCollector struct {
	d *Daemon

	up         *prometheus.Desc
	actionUp   *prometheus.Desc
	reconnects *prometheus.Desc
	agents     *prometheus.Desc
	published  *prometheus.Desc
	failed     *prometheus.Desc
	outbox     *prometheus.Desc
	agiActive  *prometheus.Desc
	agiRefused *prometheus.Desc
	dropped    *prometheus.Desc
	restored   *prometheus.Desc
}

func newStateCollector(d *Daemon) *stateCollector {
	return &stateCollector{
		d:          d,
		up:         prometheus.NewDesc("agentd_connection_up", "1 while the connection is up, by connection (ami, ari, nats).", []string{"connection"}, nil),
		actionUp:   prometheus.NewDesc("agentd_ami_action_connections_up", "AMI action-only connections logged in, at most ami.connections minus 1.", nil, nil),
		reconnects: prometheus.NewDesc("agentd_connection_reconnects_total", "Successful reconnections after the first connection, by connection.", []string{"connection"}, nil),
		agents:     prometheus.NewDesc("agentd_agents", "Agents of the directory by reported state (OFFLINE, READY, PAUSED, RINGING, ONCALL, UNAVAILABLE).", []string{"state"}, nil),
		published:  prometheus.NewDesc("agentd_events_published_total", "Events stored in the JetStream stream.", nil, nil),
		failed:     prometheus.NewDesc("agentd_events_failed_total", "Failed attempts to store a change in NATS; each is retried from the outbox.", nil, nil),
		outbox:     prometheus.NewDesc("agentd_outbox_depth", "Changes waiting in the on-disk outbox for NATS.", nil, nil),
		agiActive:  prometheus.NewDesc("agentd_agi_sessions_active", "FastAGI sessions in progress.", nil, nil),
		agiRefused: prometheus.NewDesc("agentd_agi_connections_rejected_total", "FastAGI connections closed at once, by reason (address, busy, invalid_header).", []string{"reason"}, nil),
		dropped:    prometheus.NewDesc("agentd_asterisk_events_dropped_total", "Asterisk events dropped because agentd fell behind, by connection.", []string{"connection"}, nil),
		restored:   prometheus.NewDesc("agentd_sessions_restored", "1 once the stored sessions are read from NATS after the start, as the sessions entry of /readyz.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.actionUp, c.reconnects, c.agents, c.published, c.failed, c.outbox, c.agiActive, c.agiRefused, c.dropped, c.restored} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	for _, dep := range d.dependencies() {
		up, _, _ := dep.status()
		if dep.name == dependencySessions {
			ch <- prometheus.MustNewConstMetric(c.restored, prometheus.GaugeValue, boolFloat(up))
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolFloat(up), dep.name)
	}
	ch <- prometheus.MustNewConstMetric(c.actionUp, prometheus.GaugeValue, float64(d.amiPool.ConnectedActionClients()))
	amiStats, ariStats, natsStats := d.ami.Stats(), d.stream.Stats(), d.store.Stats()
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(amiStats.Reconnects), "ami")
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(max(ariStats.Connects, 1)-1), "ari")
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(natsStats.Reconnects), "nats")
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(amiStats.EventsDropped), "ami")
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(ariStats.Dropped), "ari")
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(natsStats.Published))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(natsStats.Failed))
	ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(natsStats.OutboxDepth))
	for state, n := range c.agentStates() {
		ch <- prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(n), string(state))
	}
	if d.agi != nil {
		s := d.agi.Stats()
		ch <- prometheus.MustNewConstMetric(c.agiActive, prometheus.GaugeValue, float64(s.Active))
		ch <- prometheus.MustNewConstMetric(c.agiRefused, prometheus.CounterValue, float64(s.RejectedAddress), "address")
		ch <- prometheus.MustNewConstMetric(c.agiRefused, prometheus.CounterValue, float64(s.RejectedBusy), "busy")
		ch <- prometheus.MustNewConstMetric(c.agiRefused, prometheus.CounterValue, float64(s.InvalidHeaders), "invalid_header")
	}
}

// agentStates counts directory agents by reported state; agents without
// a session are OFFLINE.
func (c *stateCollector) agentStates() map[agent.State]int {
	counts := map[agent.State]int{}
	for _, st := range []agent.State{agent.StateOffline, agent.StateReady, agent.StatePaused, agent.StateRinging, agent.StateOnCall, agent.StateUnavailable} {
		counts[st] = 0
	}
	dir := c.d.service.Directory()
	seen := 0
	c.d.service.RangeSessions(func(s *agent.Session) {
		if _, ok := dir.Agent(s.AgentID); ok {
			counts[s.Effective()]++
			seen++
		}
	})
	counts[agent.StateOffline] += dir.Len() - seen
	return counts
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
