package daemon

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/ami"
	"github.com/contactcenter/agentd/ari"
)

// Backoff of the reconciliation retries after a failed step.
const (
	reconcileRetryMin = time.Second
	reconcileRetryMax = 30 * time.Second
)

// pollInterval is how often a reconciliation or an ARI resync that is due
// checks whether the sessions are restored and AMI is connected.
const pollInterval = 20 * time.Millisecond

// onAMIEvent routes the AMI events agentd follows. It runs on the AMI
// client's dispatch goroutine, so it only hands work over.
func (d *Daemon) onAMIEvent(msg ami.Message) {
	switch {
	case strings.EqualFold(msg.Event(), ami.EventFullyBooted):
		// Asterisk sends FullyBooted to each new session once it has
		// booted: after agentd connects and after Asterisk restarts.
		d.log.Info("Asterisk fully booted; reconciling", "uptime", msg.Get("Uptime"))
		d.triggerReconcile()
	case strings.EqualFold(msg.Event(), ami.EventQueueMemberPause):
		ev, err := ami.ParseQueueMemberPause(msg)
		if err != nil {
			d.log.Warn("invalid QueueMemberPause event", "err", err)
			return
		}
		d.service.ObservePause(ev.Interface, ev.Paused, ev.PausedReason)
	case strings.EqualFold(msg.Event(), ami.EventQueueMemberAdded), strings.EqualFold(msg.Event(), ami.EventQueueMemberRemoved):
		m, err := ami.ParseQueueMember(msg)
		if err != nil {
			d.log.Warn("invalid queue member event", "event", msg.Event(), "err", err)
			return
		}
		added := strings.EqualFold(msg.Event(), ami.EventQueueMemberAdded)
		d.service.ObserveMember(agent.Member{Queue: m.Queue, Interface: m.Interface, MemberName: m.MemberName, Penalty: m.Penalty}, added)
	}
}

// triggerReconcile requests a reconciliation. Requests made while one
// runs are merged into one more run.
func (d *Daemon) triggerReconcile() {
	select {
	case d.reconcileNow <- struct{}{}:
	default:
	}
}

// runReconciler reconciles on each trigger and retries agents whose steps
// failed with capped exponential backoff, until they succeed or a new
// trigger starts a full run.
func (d *Daemon) runReconciler(ctx context.Context) {
	retry := time.NewTimer(0)
	<-retry.C
	delay := reconcileRetryMin
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return
		case <-d.reconcileNow:
			delay = reconcileRetryMin
		case <-retry.C:
		}
		if !d.service.Restored() || !d.ami.Connected() {
			// A run that is due waits for the stored sessions and for AMI.
			// Asterisk sends FullyBooted right after the AMI login, and the
			// AMI client can dispatch it before it records the connection
			// as up, and at start before the sessions are restored. Dropping
			// the run would leave Asterisk unrepaired until the next trigger.
			retry.Reset(pollInterval)
			continue
		}
		start := time.Now()
		report, err := d.service.Reconcile(ctx)
		d.metrics.reconcileChanged.Add(float64(len(report.Changed)))
		switch {
		case err != nil:
			d.metrics.reconcileRuns.WithLabelValues("failed").Inc()
			d.log.Error("reconciliation failed; retrying", "err", err, "retry_in", delay)
		case len(report.Failed) > 0:
			d.metrics.reconcileRuns.WithLabelValues("incomplete").Inc()
			d.log.Warn("reconciliation incomplete; retrying", "checked", report.Checked, "changed", len(report.Changed), "failed", report.Failed, "retry_in", delay)
		default:
			d.metrics.reconcileRuns.WithLabelValues("ok").Inc()
			d.log.Info("reconciliation done", "checked", report.Checked, "changed", len(report.Changed), "duration", time.Since(start))
			continue
		}
		retry.Reset(delay)
		delay = min(delay*2, reconcileRetryMax)
	}
}

// ariEventPeerStatusChange is the ARI event of a SIP peer whose contacts
// became reachable or unreachable. Asterisk 22.10.1 sends it, and
// ContactStatusChange, to an application subscribed to every endpoint
// ("endpoint:"), but not EndpointStateChange, which only a subscription to
// one endpoint receives. Its "endpoint" field has the endpoint's new state.
const ariEventPeerStatusChange = "PeerStatusChange"

// ariSources are the event sources agentd subscribes its ARI application
// to: every channel (call state of agents) and every endpoint (phones
// going offline). Asterisk does not restore them after a reconnect.
var ariSources = []string{"channel:", "endpoint:"}

// onARIConnect runs after each ARI websocket (re)connect. It subscribes
// the event sources, records the Asterisk entity id written in events and
// reconciles when Asterisk restarted. It then resyncs the calls in
// progress and the endpoint states, because events sent while
// disconnected are lost.
func (d *Daemon) onARIConnect(ctx context.Context) error {
	if _, err := d.ari.Subscribe(ctx, d.cfg.ARI.Application, ariSources...); err != nil {
		return err
	}
	info, err := d.ari.Info(ctx)
	if err != nil {
		return err
	}
	d.store.SetAsteriskEntityID(info.System.EntityID)
	if d.lastStartup.Swap(info.Status.StartupTime.UnixNano()) != info.Status.StartupTime.UnixNano() {
		d.log.Info("ARI connected to a new Asterisk process", "asterisk_entity_id", info.System.EntityID, "startup_time", info.Status.StartupTime)
		d.triggerReconcile()
	}
	// The calls and endpoints apply to the stored sessions, which at
	// start may not be restored yet.
	if err := d.waitRestored(ctx); err != nil {
		return err
	}
	// Events keep arriving while the lists are read, and a list may
	// predate them: what an event reported in the meantime is kept.
	seen := d.ariSeen.start()
	channels, err := d.ari.Channels(ctx)
	if err != nil {
		d.ariSeen.stop(seen, nil)
		return err
	}
	endpoints, err := d.ari.Endpoints(ctx)
	if err != nil {
		d.ariSeen.stop(seen, nil)
		return err
	}
	d.ariSeen.stop(seen, func() {
		d.syncCalls(channels, seen.channels)
		d.syncEndpoints(endpoints, seen.endpoints)
	})
	return nil
}

// ariSeen records the channels and endpoints that ARI events reported
// while the daemon reads Asterisk's lists of both. onARIEvent calls
// channel or endpoint before it queues the event's change. A resync of an older
// connection may still run when a new one starts, so each has its own
// record.
type ariSeen struct {
	mu     sync.Mutex
	active map[*seenRecord]struct{}
}

// seenRecord holds the channels and endpoints that events reported
// during one resync.
type seenRecord struct {
	channels  map[string]bool // channel ids
	endpoints map[string]bool // interfaces such as PJSIP/1001
}

func (s *ariSeen) start() *seenRecord {
	r := &seenRecord{channels: map[string]bool{}, endpoints: map[string]bool{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		s.active = map[*seenRecord]struct{}{}
	}
	s.active[r] = struct{}{}
	return r
}

// stop ends r and runs apply, if not nil, before any further event is
// recorded. apply hands the lists to the agents' event queues, so an
// event not in r is queued after them and applies last.
func (s *ariSeen) stop(r *seenRecord, apply func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, r)
	if apply != nil {
		apply()
	}
}

func (s *ariSeen) channel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.active {
		r.channels[id] = true
	}
}

func (s *ariSeen) endpoint(iface string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.active {
		r.endpoints[iface] = true
	}
}

// waitRestored returns once the stored sessions are restored, or with the
// error of ctx.
func (d *Daemon) waitRestored(ctx context.Context) error {
	for !d.service.Restored() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	return nil
}

// syncEndpoints reports the state of every endpoint, so an agent whose
// phone went offline or came back while no websocket was open is marked
// as it is now. Agents whose state matches are left as they are, and so
// are endpoints in seen, which events reported while the list was read.
func (d *Daemon) syncEndpoints(endpoints []ari.Endpoint, seen map[string]bool) {
	for _, ep := range endpoints {
		iface := ep.Technology + "/" + ep.Resource
		switch {
		case seen[iface]:
		case ep.State == "online", ep.State == "offline":
			d.service.ObserveEndpoint(iface, ep.State == "online")
		}
	}
}

// syncCalls reports the state of the agents' live channels; seen are the
// channels that events reported while the list was read.
func (d *Daemon) syncCalls(channels []ari.Channel, seen map[string]bool) {
	live := map[string]map[string]agent.CallState{}
	for _, ch := range channels {
		if a, ok := d.service.AgentForChannel(ch.Name); ok {
			if live[a.ID] == nil {
				live[a.ID] = map[string]agent.CallState{}
			}
			live[a.ID][ch.ID] = callState(ch.State)
		}
	}
	d.service.SyncCalls(live, seen)
}

// onARIEvent routes the ARI events agentd follows.
func (d *Daemon) onARIEvent(ev ari.Event) {
	switch ev.Type {
	case ari.EventChannelCreated, ari.EventChannelStateChange:
		var p ari.ChannelStateChange
		if err := ev.Decode(&p); err != nil {
			d.log.Warn("invalid ARI channel event", "event", ev.Type, "err", err)
			return
		}
		d.ariSeen.channel(p.Channel.ID)
		if a, ok := d.service.AgentForChannel(p.Channel.Name); ok {
			d.service.ObserveCall(a.ID, p.Channel.ID, callState(p.Channel.State))
		}
	case ari.EventChannelDestroyed:
		var p ari.ChannelDestroyed
		if err := ev.Decode(&p); err != nil {
			d.log.Warn("invalid ARI channel event", "event", ev.Type, "err", err)
			return
		}
		d.ariSeen.channel(p.Channel.ID)
		if a, ok := d.service.AgentForChannel(p.Channel.Name); ok {
			d.service.ObserveCallEnded(a.ID, p.Channel.ID)
		}
	case ari.EventEndpointStateChange, ariEventPeerStatusChange:
		// Both carry the endpoint with its state in "endpoint".
		var p ari.EndpointStateChange
		if err := ev.Decode(&p); err != nil {
			d.log.Warn("invalid ARI endpoint event", "event", ev.Type, "err", err)
			return
		}
		switch p.Endpoint.State {
		case "online", "offline":
			iface := p.Endpoint.Technology + "/" + p.Endpoint.Resource
			d.ariSeen.endpoint(iface)
			d.service.ObserveEndpoint(iface, p.Endpoint.State == "online")
		}
	}
}

// callState maps an ARI channel state to the agent's call state. "Ring"
// is a call the agent's phone is placing, not one offered to it, so it
// counts as no call until it is answered.
func callState(channelState string) agent.CallState {
	switch channelState {
	case "Ringing":
		return agent.CallRinging
	case "Up":
		return agent.CallUp
	default:
		return agent.CallNone
	}
}

// startReconciler runs the reconciler with the daemon's loops.
func (d *Daemon) startReconciler(ctx context.Context) {
	d.loops.Go(func() { d.runReconciler(ctx) })
}
