package daemon

import (
	"context"
	"strings"
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

// triggerReconcile asks the reconciler to run; requests made while it
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
		if !d.ami.Connected() {
			continue // the next FullyBooted triggers a run
		}
		start := time.Now()
		report, err := d.service.Reconcile(ctx)
		switch {
		case err != nil:
			d.log.Error("reconciliation failed; retrying", "err", err, "retry_in", delay)
		case len(report.Failed) > 0:
			d.log.Warn("reconciliation incomplete; retrying", "checked", report.Checked, "changed", len(report.Changed), "failed", report.Failed, "retry_in", delay)
		default:
			d.log.Info("reconciliation done", "checked", report.Checked, "changed", len(report.Changed), "duration", time.Since(start))
			continue
		}
		retry.Reset(delay)
		delay = min(delay*2, reconcileRetryMax)
	}
}

// ariSources are the event sources agentd subscribes its ARI application
// to: every channel (call state of agents) and every endpoint (phones
// going offline). Asterisk does not restore them after a reconnect.
var ariSources = []string{"channel:", "endpoint:"}

// onARIConnect runs after each ARI websocket (re)connect: it subscribes
// the event sources, records the Asterisk entity id written in events,
// reconciles when Asterisk restarted, and resyncs the calls in progress,
// because events sent while disconnected are lost.
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
	channels, err := d.ari.Channels(ctx)
	if err != nil {
		return err
	}
	d.syncCalls(channels)
	return nil
}

// syncCalls reports the state of the agents' live channels.
func (d *Daemon) syncCalls(channels []ari.Channel) {
	live := map[string]map[string]agent.CallState{}
	for _, ch := range channels {
		if a, ok := d.service.AgentForChannel(ch.Name); ok {
			if live[a.ID] == nil {
				live[a.ID] = map[string]agent.CallState{}
			}
			live[a.ID][ch.ID] = callState(ch.State)
		}
	}
	d.service.SyncCalls(live)
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
		if a, ok := d.service.AgentForChannel(p.Channel.Name); ok {
			d.service.ObserveCall(a.ID, p.Channel.ID, callState(p.Channel.State))
		}
	case ari.EventChannelDestroyed:
		var p ari.ChannelDestroyed
		if err := ev.Decode(&p); err != nil {
			d.log.Warn("invalid ARI channel event", "event", ev.Type, "err", err)
			return
		}
		if a, ok := d.service.AgentForChannel(p.Channel.Name); ok {
			d.service.ObserveCall(a.ID, p.Channel.ID, agent.CallNone)
		}
	case ari.EventEndpointStateChange:
		var p ari.EndpointStateChange
		if err := ev.Decode(&p); err != nil {
			d.log.Warn("invalid ARI endpoint event", "err", err)
			return
		}
		switch p.Endpoint.State {
		case "online", "offline":
			d.service.ObserveEndpoint(p.Endpoint.Technology+"/"+p.Endpoint.Resource, p.Endpoint.State == "online")
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
