package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// observeTimeout bounds the Asterisk actions of one event handler.
const observeTimeout = 15 * time.Second

// autopauseReason is the paused reason app_queue sets when it pauses a
// member by itself (autopause in queues.conf), in Asterisk 20 to 22.
const autopauseReason = "Auto-Pause"

// ObservePause handles a QueueMemberPause event. A change made outside
// agentd (CLI "queue pause member", PauseQueueMember in dialplan, app_queue
// autopause) is adopted into the agent's session: the pause is applied to
// every queue of the agent and published with source asterisk. Echoes of
// agentd's own QueuePause are ignored.
func (s *Service) ObservePause(iface string, paused bool, reason string) {
	if s.echoes.consume(echoKey{iface: iface, kind: echoPause, paused: paused}) {
		return
	}
	a, ok := s.Directory().AgentByInterface(iface)
	if !ok {
		return
	}
	s.enqueue(a.ID, func(ctx context.Context) { s.adoptPause(ctx, a.ID, paused, reason) })
}

// ObserveMember handles a QueueMemberAdded (added) or QueueMemberRemoved
// event for an agent's interface, applying the member policy to changes
// made outside agentd.
func (s *Service) ObserveMember(m Member, added bool) {
	kind := echoRemove
	if added {
		kind = echoAdd
	}
	if s.echoes.consume(echoKey{iface: m.Interface, kind: kind, queue: m.Queue}) {
		return
	}
	a, ok := s.Directory().AgentByInterface(m.Interface)
	if !ok {
		return
	}
	s.enqueue(a.ID, func(ctx context.Context) { s.applyMemberPolicy(ctx, a.ID, m, added) })
}

// enqueue runs fn for the agent after the events queued before it, with a
// deadline. Events of different agents run in parallel.
func (s *Service) enqueue(agentID string, fn func(context.Context)) {
	if s.bgCtx.Err() != nil {
		return
	}
	sl := s.slot(agentID)
	sl.eventsMu.Lock()
	sl.events = append(sl.events, func() {
		ctx, cancel := context.WithTimeout(s.bgCtx, observeTimeout)
		defer cancel()
		fn(ctx)
	})
	if sl.eventsRunning {
		sl.eventsMu.Unlock()
		return
	}
	sl.eventsRunning = true
	sl.eventsMu.Unlock()

	s.bgMu.RLock()
	defer s.bgMu.RUnlock()
	if s.bgClosed {
		return
	}
	s.bg.Go(func() {
		for {
			sl.eventsMu.Lock()
			if len(sl.events) == 0 {
				sl.eventsRunning = false
				sl.eventsMu.Unlock()
				return
			}
			next := sl.events[0]
			sl.events[0] = nil
			sl.events = sl.events[1:]
			sl.eventsMu.Unlock()
			next()
		}
	})
}

// outsidePauseID maps the paused reason of an outside pause to a pause id.
func (s *Service) outsidePauseID(reason string) string {
	switch reason {
	case "":
		return s.outside.externalPauseID
	case autopauseReason:
		return s.outside.autopausePauseID
	default:
		return reason
	}
}

func (s *Service) adoptPause(ctx context.Context, agentID string, paused bool, reason string) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	pauseID := s.outsidePauseID(reason)
	log := s.log.With("agent_id", agentID, "interface", a.Interface, "paused", paused, "pause_id", pauseID)
	if !prev.LoggedIn() {
		log.Info("pause change of a member of a logged-out agent ignored")
		return
	}
	if paused == prev.Paused() && (!paused || pauseID == prev.PauseID) {
		return
	}

	// Apply to every queue: a pause made on one queue becomes the agent's
	// pause, as agentd pauses agents on all their queues.
	var undo undoStack
	err = s.pauseMember(ctx, prev.Interface, len(prev.Members), paused, pauseID, true)
	next := prev
	next.Since = s.stamp()
	next.State, next.PauseID = StateReady, ""
	typ := EventUnpaused
	var p *Pause
	if paused {
		next.State, next.PauseID, typ = StatePaused, pauseID, EventPaused
		pause := s.Directory().PauseOrUnknown(pauseID)
		p = &pause
	}
	if err == nil {
		err = s.setDeviceState(ctx, a, next.Effective())
	}
	if err != nil {
		log.Error("adopting a pause change made outside agentd failed", "err", err)
		return
	}
	if _, err := s.commit(ctx, sl, a, typ, p, prev, next, SourceAsterisk, &undo); err != nil {
		log.Error("storing a pause change made outside agentd failed", "err", err)
		return
	}
	log.Info("adopted a pause change made outside agentd", "reason", reason)
}

func (s *Service) applyMemberPolicy(ctx context.Context, agentID string, m Member, added bool) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	expected := prev.LoggedIn() && slices.ContainsFunc(prev.Members, func(x Member) bool { return x.Queue == m.Queue && x.Interface == m.Interface })
	log := s.log.With("agent_id", agentID, "queue", m.Queue, "interface", m.Interface, "policy", string(s.outside.memberPolicy))
	if added == expected {
		return // Asterisk already matches the session
	}
	if added {
		log.Warn("member added outside agentd")
	} else {
		log.Warn("member removed outside agentd")
	}

	switch s.outside.memberPolicy {
	case MemberAdopt:
		s.adoptMember(ctx, sl, a, prev, m, added, log)
	default:
		if !sl.allowRestore(m.Queue, s.now()) {
			log.Error("member keeps changing outside agentd; not restoring it for a while. Is another agentd or a script managing this Asterisk?",
				"restores", maxRestores, "window", restoreWindow)
			return
		}
		if err := s.restoreMember(ctx, prev, m, added); err != nil {
			log.Error("restoring the member failed; the next reconciliation retries", "err", err)
			return
		}
		log.Info("member restored to the stored session")
	}
}

// restoreMember undoes an outside change: it adds the member back as the
// session has it, or removes a member the session does not have.
func (s *Service) restoreMember(ctx context.Context, prev Session, m Member, added bool) error {
	if added {
		return ignore(ignore(s.removeMember(ctx, m.Queue, m.Interface), ErrNotMember), ErrNoSuchQueue)
	}
	for _, x := range prev.Members {
		if x.Queue == m.Queue {
			return ignore(s.addMember(ctx, x, prev.Paused(), prev.PauseID), ErrAlreadyMember)
		}
	}
	return nil
}

func (s *Service) adoptMember(ctx context.Context, sl *slot, a Agent, prev Session, m Member, added bool, log *slog.Logger) {
	if !prev.LoggedIn() {
		log.Info("member of a logged-out agent left as it is; the adopt policy does not log agents in")
		return
	}
	next := prev
	next.Members = slices.DeleteFunc(slices.Clone(prev.Members), func(x Member) bool { return x.Queue == m.Queue })
	if added {
		next.Members = append(next.Members, m)
	}
	var undo undoStack
	if _, err := s.commit(ctx, sl, a, EventMembersChanged, nil, prev, next, SourceAsterisk, &undo); err != nil {
		log.Error("storing an adopted member change failed", "err", err)
		return
	}
	log.Info("adopted a member change made outside agentd")
}

// AgentForChannel returns the agent whose interface a channel belongs to:
// PJSIP/1001-0000000a belongs to PJSIP/1001, and both halves of
// Local/1001@agent-phones-00000005;1 belong to Local/1001@agent-phones/n.
func (s *Service) AgentForChannel(name string) (Agent, bool) {
	d := s.Directory()
	base, _, _ := strings.Cut(name, ";")
	if i := strings.LastIndexByte(base, '-'); i > 0 {
		base = base[:i]
	}
	if a, ok := d.AgentByInterface(base); ok {
		return a, true
	}
	return d.agentByChannelBase(base)
}

// ObserveCall records the state of one of the agent's live channels:
// CallNone for a channel that neither rings nor is up. While any channel is
// up the agent is ONCALL, else RINGING while one rings; the change is
// published and shown on the agent's device. Only logged-in agents are
// followed.
//
// A channel only moves forward, from CallNone to CallRinging to CallUp,
// so a state behind the one known is an event older than the channel list
// read after an ARI connect, and is ignored.
func (s *Service) ObserveCall(agentID, channelID string, state CallState) {
	s.enqueue(agentID, func(ctx context.Context) { s.updateCall(ctx, agentID, channelID, state, false) })
}

// ObserveCallEnded records that one of the agent's channels ended.
func (s *Service) ObserveCallEnded(agentID, channelID string) {
	s.enqueue(agentID, func(ctx context.Context) { s.updateCall(ctx, agentID, channelID, CallNone, true) })
}

func (s *Service) updateCall(ctx context.Context, agentID, channelID string, state CallState, ended bool) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return
	}
	defer sl.lock.Unlock()
	if sl.calls == nil {
		sl.calls = map[string]CallState{}
	}
	known, ok := sl.calls[channelID]
	switch {
	case ended:
		delete(sl.calls, channelID)
	case ok && callRank(state) < callRank(known):
		s.log.Debug("ignored a channel state older than the one known", "agent_id", agentID, "channel_id", channelID,
			"state", string(state), "known", string(known))
		return
	default:
		sl.calls[channelID] = state
	}
	s.applyCalls(ctx, sl, a)
}

// applyCalls sets the agent's call state from its channels, sl.calls, and
// publishes the change of a logged-in agent. The caller holds the agent's
// lock.
func (s *Service) applyCalls(ctx context.Context, sl *slot, a Agent) {
	prev := s.current(a.ID)
	next := prev
	next.CallState = aggregateCalls(sl.calls)
	if !prev.LoggedIn() || next.CallState == prev.CallState {
		return
	}
	s.applyAvailability(ctx, sl, a, prev, next, EventCallStateChanged)
}

// callRank orders the states a channel goes through.
func callRank(c CallState) int {
	switch c {
	case CallRinging:
		return 1
	case CallUp:
		return 2
	default:
		return 0
	}
}

// aggregateCalls returns ONCALL when a channel is up, RINGING when one
// rings, else no call.
func aggregateCalls(calls map[string]CallState) CallState {
	state := CallNone
	for _, c := range calls {
		if c == CallUp {
			return CallUp
		}
		if c == CallRinging {
			state = CallRinging
		}
	}
	return state
}

// ObserveEndpoint handles an endpoint going offline or online. A
// logged-in agent whose endpoint is offline is marked unavailable, and
// logged out after UnavailableLogout when that is set.
func (s *Service) ObserveEndpoint(iface string, online bool) {
	a, ok := s.Directory().AgentByInterface(iface)
	if !ok {
		return
	}
	s.enqueue(a.ID, func(ctx context.Context) { s.updateEndpoint(ctx, a.ID, online) })
}

func (s *Service) updateEndpoint(ctx context.Context, agentID string, online bool) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	switch {
	case online:
		s.stopLogoutTimer(sl)
		sl.offlineSince = time.Time{}
	case sl.offlineSince.IsZero():
		sl.offlineSince = s.stamp()
	}
	if !prev.LoggedIn() {
		return
	}
	if prev.Unavailable == !online {
		// Already stored as unavailable, e.g. before a restart of agentd:
		// the logout timer lives in memory only, so it starts again for
		// the rest of the grace period.
		if !online {
			s.resumeLogoutTimer(sl, agentID, prev.UnavailableSince)
		}
		return
	}
	next := prev
	next.Unavailable = !online
	next.UnavailableSince = time.Time{}
	if !online {
		next.UnavailableSince = sl.offlineSince
		s.startLogoutTimer(sl, agentID, s.outside.unavailableLogout)
	}
	s.applyAvailability(ctx, sl, a, prev, next, EventAvailabilityChanged)
}

// applyAvailability shows a call or endpoint change on the device and
// stores it. Both are facts reported by Asterisk, so nothing is undone.
func (s *Service) applyAvailability(ctx context.Context, sl *slot, a Agent, prev, next Session, typ EventType) {
	log := s.log.With("agent_id", a.ID, "state", string(next.Effective()))
	if err := s.setDeviceState(ctx, a, next.Effective()); err != nil {
		log.Warn("setting the device state failed", "err", err)
	}
	var undo undoStack
	if _, err := s.commit(ctx, sl, a, typ, nil, prev, next, SourceAsterisk, &undo); err != nil {
		log.Error("storing a call or availability change failed", "event", string(typ), "err", err)
	}
}

// startLogoutTimer logs the agent out after delay, replacing a running
// timer. It does nothing when UnavailableLogout is not set.
func (s *Service) startLogoutTimer(sl *slot, agentID string, delay time.Duration) {
	if s.outside.unavailableLogout <= 0 {
		return
	}
	sl.eventsMu.Lock()
	defer sl.eventsMu.Unlock()
	if sl.logoutTimer != nil {
		sl.logoutTimer.Stop()
	}
	var timer *time.Timer
	timer = time.AfterFunc(max(delay, 0), func() {
		sl.eventsMu.Lock()
		if sl.logoutTimer == timer {
			sl.logoutTimer = nil
		}
		sl.eventsMu.Unlock()
		s.enqueue(agentID, func(ctx context.Context) { s.logoutUnavailable(ctx, agentID) })
	})
	sl.logoutTimer = timer
}

// resumeLogoutTimer starts the logout timer of an agent unavailable since
// since, for what remains of the grace period, unless a timer runs. A zero
// since starts the whole period.
func (s *Service) resumeLogoutTimer(sl *slot, agentID string, since time.Time) {
	sl.eventsMu.Lock()
	running := sl.logoutTimer != nil
	sl.eventsMu.Unlock()
	if running {
		return
	}
	delay := s.outside.unavailableLogout
	if !since.IsZero() {
		delay -= s.now().Sub(since)
	}
	s.startLogoutTimer(sl, agentID, delay)
}

func (s *Service) stopLogoutTimer(sl *slot) {
	sl.eventsMu.Lock()
	defer sl.eventsMu.Unlock()
	if sl.logoutTimer != nil {
		sl.logoutTimer.Stop()
		sl.logoutTimer = nil
	}
}

// logoutUnavailable logs out an agent still unavailable after the grace
// period, with source timer.
func (s *Service) logoutUnavailable(ctx context.Context, agentID string) {
	if st := s.current(agentID); !st.LoggedIn() || !st.Unavailable {
		return
	}
	if _, err := s.Logout(ctx, agentID, SourceTimer); err != nil && !errors.Is(err, ErrUnknownAgent) {
		s.log.Error("logging out an unavailable agent failed", "agent_id", agentID, "err", err)
		return
	}
	s.log.Info("logged out an agent whose endpoint stayed offline", "agent_id", agentID, "grace", s.outside.unavailableLogout)
}

// SyncCalls replaces the known channels of agents with live, the channels
// Asterisk reports after an ARI reconnect, because events sent while
// disconnected are lost. Agents missing from live have no call.
//
// newer holds the channels that ARI events reported while live was being
// read. Their state as the events left it is kept: live may predate those
// events, and any later change arrives as a further event.
func (s *Service) SyncCalls(live map[string]map[string]CallState, newer map[string]bool) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for id := range live {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		calls := live[id]
		s.enqueue(id, func(ctx context.Context) { s.replaceCalls(ctx, id, calls, newer) })
	}
}

func (s *Service) replaceCalls(ctx context.Context, agentID string, live map[string]CallState, newer map[string]bool) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return
	}
	defer sl.lock.Unlock()
	calls := make(map[string]CallState, len(live))
	for ch, state := range live {
		if !newer[ch] {
			calls[ch] = state
		}
	}
	for ch, state := range sl.calls {
		if newer[ch] {
			calls[ch] = state
		}
	}
	sl.calls = calls
	s.applyCalls(ctx, sl, a)
}

// Restores of one member in restoreWindow beyond which agentd stops
// restoring it until the window passes: two systems that each restore
// their own view would otherwise undo each other without end.
const (
	maxRestores   = 3
	restoreWindow = time.Minute
)

// allowRestore records a restore of the agent's member of queue at now and
// reports whether it is within maxRestores per restoreWindow. The caller
// holds the agent's lock.
func (sl *slot) allowRestore(queue string, now time.Time) bool {
	if sl.restores == nil {
		sl.restores = map[string][]time.Time{}
	}
	recent := slices.DeleteFunc(sl.restores[queue], func(t time.Time) bool { return now.Sub(t) >= restoreWindow })
	if len(recent) >= maxRestores {
		sl.restores[queue] = recent
		return false
	}
	sl.restores[queue] = append(recent, now)
	return true
}
