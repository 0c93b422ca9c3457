package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// undoTimeout bounds the compensating actions run after a failed step.
const undoTimeout = 5 * time.Second

// Login adds the agent to each of its queues, unpaused. On an agent that is
// already logged in it re-applies the membership: missing members are
// added, members of queues no longer in the directory are removed, and the
// agent is unpaused.
func (s *Service) Login(ctx context.Context, agentID string, src Source) (Result, error) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return Result{}, err
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	// The calls and the endpoint are followed while the agent is logged
	// out too, so the new session starts with them.
	next := prev
	next.State = StateReady
	next.PauseID = ""
	next.Interface = a.Interface
	next.CallState = aggregateCalls(sl.calls)
	next.Unavailable = !sl.offlineSince.IsZero()
	next.UnavailableSince = sl.offlineSince
	if prev.State != StateReady {
		next.Since = s.stamp()
	}
	// The change is staged as if every queue took the member. A queue
	// that Asterisk does not know changes the members, so then the staged
	// change is withdrawn and the actual one committed.
	expected := next
	expected.Members = a.Members()
	var stage *stageStep
	if !sessionEqual(prev, expected) {
		stage = s.startStage(ctx, a, EventLoggedIn, nil, prev, expected, src)
	}

	var undo undoStack
	device := s.startDeviceState(ctx, a, next.Effective())
	members, already, warnings, err := s.addMembers(ctx, a, &undo)
	if err == nil {
		err = s.removeStale(ctx, prev, members)
	}
	// QueueAdd adds unpaused; only members that were already there can
	// still be paused.
	if err == nil && (prev.Paused() || already) {
		err = s.pauseMember(ctx, a.Interface, len(members), false, prev.PauseID, true)
	}
	err = device.wait(err, prev, &undo)
	if err != nil {
		stage.withdraw(ctx, s.log)
		undo.run(ctx, s.log)
		return Result{}, fmt.Errorf("login agent %q: %w", agentID, err)
	}

	next.Members = members
	var st Status
	switch {
	case stage != nil && slices.Equal(members, expected.Members):
		st, err = s.release(ctx, sl, stage, &undo)
	case sessionEqual(prev, next):
		stage.withdraw(ctx, s.log)
		return Result{Status: s.status(a, prev), Warnings: warnings}, nil
	default:
		var at time.Time
		if stage != nil {
			// The change that did happen keeps the request's time.
			stage.withdraw(ctx, s.log)
			at = stage.change.OccurredAt
		} else {
			at = s.stamp()
		}
		change := s.newChange(a, EventLoggedIn, nil, prev, next, src, at)
		st, err = s.applyStored(ctx, sl, change, s.store.Commit(ctx, change), &undo)
	}
	if err == nil && next.Unavailable && !prev.Unavailable {
		// The grace period before the logout starts at the login.
		s.startLogoutTimer(sl, agentID, s.outside.unavailableLogout)
	}
	return Result{Status: st, Warnings: warnings}, err
}

// Logout unpauses the agent and removes it from every queue it was added
// to. Logging out an agent that is not logged in succeeds and sends
// nothing to Asterisk.
func (s *Service) Logout(ctx context.Context, agentID string, src Source) (Result, error) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return Result{}, err
	}
	defer sl.lock.Unlock()
	return s.logoutLocked(ctx, a, sl, src)
}

// logoutLocked is Logout for a caller that holds the agent's lock.
func (s *Service) logoutLocked(ctx context.Context, a Agent, sl *slot, src Source) (Result, error) {
	prev := s.current(a.ID)
	if !prev.LoggedIn() {
		return Result{Status: s.status(a, prev)}, nil
	}

	next := Session{AgentID: a.ID, State: StateOffline, Since: s.stamp(), Revision: prev.Revision}
	stage := s.startStage(ctx, a, EventLoggedOut, nil, prev, next, src)
	var undo undoStack
	device := s.startDeviceState(ctx, a, StateOffline)
	// Unpausing first closes the pause in queue_log before REMOVEMEMBER, so
	// reports see the pause end; an interface in no queue is not an error.
	err := s.pauseMember(ctx, prev.Interface, len(prev.Members), false, prev.PauseID, true)
	if err == nil && prev.Paused() {
		undo.push("re-pause "+prev.Interface, func(ctx context.Context) error {
			return s.sendPause(ctx, prev.Interface, len(prev.Members), true, prev.PauseID)
		})
	}
	if err == nil {
		err = s.removeMembers(ctx, prev.Members, &undo)
	}
	err = device.wait(err, prev, &undo)
	if err != nil {
		stage.withdraw(ctx, s.log)
		undo.run(ctx, s.log)
		return Result{}, fmt.Errorf("logout agent %q: %w", a.ID, err)
	}
	st, err := s.release(ctx, sl, stage, &undo)
	return Result{Status: st}, err
}

// Pause puts a logged-in agent in the pause pauseID on every queue, with
// the pause id as the member's paused reason. An agent already in another
// pause switches to this one.
func (s *Service) Pause(ctx context.Context, agentID, pauseID string, src Source) (Result, error) {
	p, ok := s.Directory().Pause(pauseID)
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownPause, pauseID)
	}
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return Result{}, err
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	if !prev.LoggedIn() {
		return Result{}, fmt.Errorf("pause agent %q: %w", agentID, ErrNotLoggedIn)
	}
	if prev.Paused() && prev.PauseID == pauseID {
		return Result{Status: s.status(a, prev)}, nil
	}

	next := prev
	next.State = StatePaused
	next.PauseID = pauseID
	next.Since = s.stamp()
	stage := s.startStage(ctx, a, EventPaused, &p, prev, next, src)
	var undo undoStack
	device := s.startDeviceState(ctx, a, StatePaused)
	err = s.pauseMember(ctx, prev.Interface, len(prev.Members), true, pauseID, len(prev.Members) == 0)
	if err == nil {
		undo.push("restore pause state of "+prev.Interface, func(ctx context.Context) error {
			return s.sendPause(ctx, prev.Interface, len(prev.Members), prev.Paused(), prev.PauseID)
		})
	}
	err = device.wait(err, prev, &undo)
	if err != nil {
		stage.withdraw(ctx, s.log)
		undo.run(ctx, s.log)
		return Result{}, fmt.Errorf("pause agent %q: %w", agentID, err)
	}
	st, err := s.release(ctx, sl, stage, &undo)
	return Result{Status: st}, err
}

// Unpause takes the agent out of the pause pauseID. It fails with
// ErrPauseMismatch when the agent is in another pause, so a stale
// after-call timer cannot end a pause the agent chose later. Unpausing a
// ready agent succeeds and sends nothing.
func (s *Service) Unpause(ctx context.Context, agentID, pauseID string, src Source) (Result, error) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return Result{}, err
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	// A pause removed from the catalog while an agent is in it can still be
	// left, so the current pause id is always accepted.
	inThisPause := prev.Paused() && prev.PauseID == pauseID
	if _, known := s.Directory().Pause(pauseID); !known && !inThisPause {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownPause, pauseID)
	}
	switch {
	case !prev.LoggedIn():
		return Result{}, fmt.Errorf("unpause agent %q: %w", agentID, ErrNotLoggedIn)
	case !prev.Paused():
		return Result{Status: s.status(a, prev)}, nil
	case prev.PauseID != pauseID:
		return Result{}, fmt.Errorf("unpause agent %q from pause %q while in pause %q: %w", agentID, pauseID, prev.PauseID, ErrPauseMismatch)
	}

	next := prev
	next.State = StateReady
	next.PauseID = ""
	next.Since = s.stamp()
	stage := s.startStage(ctx, a, EventUnpaused, nil, prev, next, src)
	var undo undoStack
	device := s.startDeviceState(ctx, a, StateReady)
	err = s.pauseMember(ctx, prev.Interface, len(prev.Members), false, pauseID, len(prev.Members) == 0)
	if err == nil {
		undo.push("re-pause "+prev.Interface, func(ctx context.Context) error {
			return s.sendPause(ctx, prev.Interface, len(prev.Members), true, prev.PauseID)
		})
	}
	err = device.wait(err, prev, &undo)
	if err != nil {
		stage.withdraw(ctx, s.log)
		undo.run(ctx, s.log)
		return Result{}, fmt.Errorf("unpause agent %q: %w", agentID, err)
	}
	st, err := s.release(ctx, sl, stage, &undo)
	return Result{Status: st}, err
}

// commit stores the change and publishes its event, then makes next the
// agent's current session. If the store fails, the Asterisk steps of the
// request are undone so Asterisk keeps matching the stored state.
func (s *Service) commit(ctx context.Context, sl *slot, a Agent, typ EventType, p *Pause, prev, next Session, src Source, undo *undoStack) (Status, error) {
	change := s.newChange(a, typ, p, prev, next, src, s.stamp())
	return s.applyStored(ctx, sl, change, s.store.Commit(ctx, change), undo)
}

// release publishes the change that st staged, as commit does. With a
// store that cannot stage, it commits st's change now.
func (s *Service) release(ctx context.Context, sl *slot, st *stageStep, undo *undoStack) (Status, error) {
	<-st.done
	var err error
	switch {
	case st.fallback:
		err = s.store.Commit(ctx, st.change)
	case st.err != nil:
		err = st.err
	default:
		err = st.staged.Release(ctx)
	}
	return s.applyStored(ctx, sl, st.change, err, undo)
}

// newChange builds the change from prev to next at time at, with the next
// revision.
func (s *Service) newChange(a Agent, typ EventType, p *Pause, prev, next Session, src Source, at time.Time) Change {
	next.Revision = prev.Revision + 1
	if p == nil && next.Paused() {
		pause := s.Directory().PauseOrUnknown(next.PauseID)
		p = &pause
	}
	return Change{Type: typ, Agent: a, Pause: p, Previous: prev, Session: next, Source: src, OccurredAt: at}
}

// applyStored makes the change current once storing it gave err nil. On an
// error it undoes the Asterisk steps of the request, so Asterisk keeps
// matching the stored state.
func (s *Service) applyStored(ctx context.Context, sl *slot, c Change, err error, undo *undoStack) (Status, error) {
	if err != nil {
		undo.run(ctx, s.log)
		if !errors.Is(err, ErrStoreUnavailable) {
			err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
		}
		return Status{}, fmt.Errorf("store %s of agent %q: %w", c.Type, c.Agent.ID, err)
	}
	next := c.Session
	sl.session.Store(&next)
	s.log.Info("agent state changed", "agent_id", c.Agent.ID, "event", string(c.Type), "state", string(next.Effective()),
		"previous_state", string(c.Previous.State), "pause_id", next.PauseID, "source", string(c.Source))
	return s.status(c.Agent, next), nil
}

// stageStep stages the change a request expects while its Asterisk
// actions run (see Stager).
type stageStep struct {
	change Change
	done   chan struct{}
	// fallback is set when the store cannot stage: the change is then
	// committed after the Asterisk actions.
	fallback bool
	staged   StagedChange
	err      error
}

// startStage starts staging the change from prev to next. The caller must
// end it with release or withdraw.
func (s *Service) startStage(ctx context.Context, a Agent, typ EventType, p *Pause, prev, next Session, src Source) *stageStep {
	st := &stageStep{change: s.newChange(a, typ, p, prev, next, src, s.stamp()), done: make(chan struct{})}
	stager, ok := s.store.(Stager)
	if !ok {
		st.fallback = true
		close(st.done)
		return st
	}
	go func() {
		defer close(st.done)
		st.staged, st.err = stager.Stage(ctx, st.change)
	}()
	return st
}

// withdraw ends a staged change that will not be released. A nil st does
// nothing.
func (st *stageStep) withdraw(ctx context.Context, log *slog.Logger) {
	if st == nil {
		return
	}
	<-st.done
	if st.fallback || st.err != nil {
		return
	}
	if err := st.staged.Withdraw(context.WithoutCancel(ctx)); err != nil {
		log.Error("withdrawing a staged change failed; a restart may apply it",
			"agent_id", st.change.Agent.ID, "event", string(st.change.Type), "err", err)
	}
}

// addMembers sends QueueAdd for every queue of the agent at once. It
// returns the members Asterisk now has; queues Asterisk does not know are
// reported as warnings. already reports whether some member was there
// before. Members added here are pushed on undo.
func (s *Service) addMembers(ctx context.Context, a Agent, undo *undoStack) (members []Member, already bool, warnings []Warning, err error) {
	wanted := a.Members()
	errs := make([]error, len(wanted))
	var wg sync.WaitGroup
	for i, m := range wanted {
		wg.Go(func() { errs[i] = s.addMember(ctx, m, false, "") })
	}
	wg.Wait()

	var failed []error
	for i, m := range wanted {
		switch addErr := errs[i]; {
		case addErr == nil:
			members = append(members, m)
			undo.push("remove "+m.Interface+" from "+m.Queue, func(ctx context.Context) error {
				return ignore(s.removeMember(ctx, m.Queue, m.Interface), ErrNotMember)
			})
		case errors.Is(addErr, ErrAlreadyMember):
			members = append(members, m)
			already = true
		case errors.Is(addErr, ErrNoSuchQueue):
			s.log.Warn("queue of agent not found in Asterisk", "agent_id", a.ID, "queue", m.Queue, "interface", m.Interface)
			warnings = append(warnings, Warning{Code: WarningNoSuchQueue, Queue: m.Queue})
		default:
			failed = append(failed, fmt.Errorf("add %s to queue %q: %w", m.Interface, m.Queue, addErr))
		}
	}
	return members, already, warnings, errors.Join(failed...)
}

// removeStale removes members of the previous session that the agent no
// longer has: queues dropped from the directory or an old interface.
func (s *Service) removeStale(ctx context.Context, prev Session, members []Member) error {
	var stale []Member
	for _, old := range prev.Members {
		if !slices.ContainsFunc(members, func(m Member) bool { return m.Queue == old.Queue && m.Interface == old.Interface }) {
			stale = append(stale, old)
		}
	}
	return s.removeMembers(ctx, stale, nil)
}

// removeMembers sends QueueRemove for each member at once. A member that
// is already gone, or whose queue is gone, counts as removed. Removed
// members are pushed on undo when undo is not nil.
func (s *Service) removeMembers(ctx context.Context, members []Member, undo *undoStack) error {
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { errs[i] = s.removeMember(ctx, m.Queue, m.Interface) })
	}
	wg.Wait()

	var failed []error
	for i, m := range members {
		err := ignore(ignore(errs[i], ErrNotMember), ErrNoSuchQueue)
		if err != nil {
			failed = append(failed, fmt.Errorf("remove %s from queue %q: %w", m.Interface, m.Queue, err))
			continue
		}
		if undo != nil && errs[i] == nil {
			undo.push("re-add "+m.Interface+" to "+m.Queue, func(ctx context.Context) error {
				return ignore(s.addMember(ctx, m, false, ""), ErrAlreadyMember)
			})
		}
	}
	return errors.Join(failed...)
}

// pauseMember sends QueuePause on every queue of iface, which is a member
// of that many queues. When notFoundOK is set, an interface in no queue
// counts as done. Otherwise it is an error, because Asterisk lost members
// that agentd still records.
func (s *Service) pauseMember(ctx context.Context, iface string, queues int, paused bool, reason string, notFoundOK bool) error {
	err := s.sendPause(ctx, iface, queues, paused, reason)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotMember) && notFoundOK:
		return nil
	case errors.Is(err, ErrNotMember):
		return &AsteriskError{Action: "QueuePause", Message: fmt.Sprintf("interface %s is in no queue; log the agent in again", iface)}
	default:
		return fmt.Errorf("pause %s (paused=%t): %w", iface, paused, err)
	}
}

// addMember sends QueueAdd, paused with reason when paused is set, and
// expects its QueueMemberAdded echo.
func (s *Service) addMember(ctx context.Context, m Member, paused bool, reason string) error {
	key := echoKey{iface: m.Interface, kind: echoAdd, queue: m.Queue}
	s.echoes.expect(key, 1)
	var err error
	switch adder, ok := s.queues.(PausedAdder); {
	case !paused:
		err = s.queues.AddMember(ctx, m)
	case ok:
		err = adder.AddPausedMember(ctx, m, reason)
	default:
		if err = s.queues.AddMember(ctx, m); err == nil {
			err = s.queues.PauseMember(ctx, m.Interface, true, reason)
		}
	}
	if err != nil {
		s.echoes.forget(key, 1)
	}
	return err
}

// removeMember sends QueueRemove and expects its QueueMemberRemoved echo.
func (s *Service) removeMember(ctx context.Context, queue, iface string) error {
	key := echoKey{iface: iface, kind: echoRemove, queue: queue}
	s.echoes.expect(key, 1)
	err := s.queues.RemoveMember(ctx, queue, iface)
	if err != nil {
		s.echoes.forget(key, 1)
	}
	return err
}

// sendPause sends QueuePause for every queue of iface and expects one
// QueueMemberPause echo per queue.
func (s *Service) sendPause(ctx context.Context, iface string, queues int, paused bool, reason string) error {
	key := echoKey{iface: iface, kind: echoPause, paused: paused}
	s.echoes.expect(key, queues)
	err := s.queues.PauseMember(ctx, iface, paused, reason)
	if err != nil {
		s.echoes.forget(key, queues)
	}
	return err
}

// deviceStep is a device state change that runs alongside the queue
// actions of a request, because neither depends on the other.
type deviceStep struct {
	s     *Service
	agent Agent
	done  chan struct{}
	err   error
}

// startDeviceState starts setting the agent's device to the state mapped
// from st. The caller must call wait.
func (s *Service) startDeviceState(ctx context.Context, a Agent, st State) *deviceStep {
	d := &deviceStep{s: s, agent: a, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.err = s.setDeviceState(ctx, a, st)
	}()
	return d
}

// wait waits for the device state change and returns queueErr, the
// result of the queue actions, or else the change's own error. When the
// queue actions failed and the device changed, it pushes a step on undo
// that sets the device back to the state of prev.
func (d *deviceStep) wait(queueErr error, prev Session, undo *undoStack) error {
	<-d.done
	if queueErr == nil {
		return d.err
	}
	if d.err == nil {
		undo.push("set device "+d.agent.DeviceName()+" back", func(ctx context.Context) error {
			return d.s.setDeviceState(ctx, d.agent, prev.Effective())
		})
	}
	return queueErr
}

// setDeviceState sets the agent's Stasis: device to the mapped state.
func (s *Service) setDeviceState(ctx context.Context, a Agent, st State) error {
	value, ok := s.stateMap[st]
	if !ok || value == "" {
		return nil
	}
	if err := s.devices.SetDeviceState(ctx, a.DeviceName(), value); err != nil {
		return fmt.Errorf("set device state %s to %s: %w", a.DeviceName(), value, err)
	}
	return nil
}

// ignore returns nil when err wraps target.
func ignore(err, target error) error {
	if errors.Is(err, target) {
		return nil
	}
	return err
}

// sessionEqual reports whether two sessions describe the same state and
// members, ignoring the revision.
func sessionEqual(a, b Session) bool {
	return a.State == b.State && a.PauseID == b.PauseID && a.Interface == b.Interface &&
		a.Since.Equal(b.Since) && slices.Equal(a.Members, b.Members)
}

// undoStack collects compensating actions for the steps a request applied.
type undoStack struct {
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func(context.Context) error
}

func (u *undoStack) push(name string, fn func(context.Context) error) {
	u.steps = append(u.steps, undoStep{name: name, fn: fn})
}

// run undoes the steps in reverse order, best effort: a failure is logged
// and the rest still run. Reconciliation repairs what could not be undone.
func (u *undoStack) run(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	for i := len(u.steps) - 1; i >= 0; i-- {
		step := u.steps[i]
		if err := step.fn(ctx); err != nil {
			log.Error("undo step failed; Asterisk may differ from the stored state", "step", step.name, "err", err)
		}
	}
	u.steps = nil
}

// stamp returns the current time in UTC to the millisecond, the precision
// of the API, the events and the stored sessions.
func (s *Service) stamp() time.Time {
	return s.now().UTC().Truncate(time.Millisecond)
}
