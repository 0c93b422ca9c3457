package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// reconcileParallel bounds the agents reconciled at once. Each agent's
// actions are few and Asterisk serves AMI actions concurrently.
const reconcileParallel = 16

// ReconcileReport is the outcome of a reconciliation.
type ReconcileReport struct {
	Checked int      // agents compared with Asterisk
	Changed []string // agents whose Asterisk state had to change
	Failed  []string // agents with a step that failed; retry them
}

// Reconcile makes Asterisk match the stored sessions, which are the
// intended state. Every logged-in agent becomes a member of each of its
// queues, with its pause state and the pause id as reason. Members of
// agentd's agents that the sessions do not have are removed, and every
// stored agent's Stasis: device state is set again. Each difference fixed
// is logged, and each agent whose Asterisk state changed gets one event
// with source reconcile. A failed step never stops the other agents; their
// ids are in the report's Failed list.
func (s *Service) Reconcile(ctx context.Context) (ReconcileReport, error) {
	lister, ok := s.queues.(MemberLister)
	if !ok {
		return ReconcileReport{}, errors.New("reconcile: the queue backend cannot list members")
	}
	// Revisions before the snapshot: an agent changed by a request while
	// the snapshot is taken is skipped, because the request applied its own
	// state and the snapshot may predate it.
	revisions := map[string]uint64{}
	for _, sess := range s.Sessions() {
		revisions[sess.AgentID] = sess.Revision
	}
	actual, err := lister.Members(ctx)
	if err != nil {
		return ReconcileReport{}, fmt.Errorf("reconcile: read queue members: %w", err)
	}
	byIface := map[string][]MemberState{}
	for _, m := range actual {
		byIface[m.Interface] = append(byIface[m.Interface], m)
	}
	ids := s.reconcileTargets(byIface)

	var (
		mu     sync.Mutex
		report = ReconcileReport{Checked: len(ids)}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, reconcileParallel)
	)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			changed, err := s.reconcileAgent(ctx, id, revisions[id], byIface)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Error("reconciling agent failed; it is retried", "agent_id", id, "err", err)
				report.Failed = append(report.Failed, id)
			}
			if changed {
				report.Changed = append(report.Changed, id)
			}
		})
	}
	wg.Wait()
	slices.Sort(report.Changed)
	slices.Sort(report.Failed)
	return report, nil
}

// reconcileTargets returns the agents to check: every agent with a stored
// session, and every directory agent that Asterisk has as a member.
func (s *Service) reconcileTargets(byIface map[string][]MemberState) []string {
	d := s.Directory()
	seen := map[string]bool{}
	var ids []string
	for _, sess := range s.Sessions() {
		if _, ok := d.Agent(sess.AgentID); ok && !seen[sess.AgentID] {
			seen[sess.AgentID] = true
			ids = append(ids, sess.AgentID)
		}
	}
	for iface := range byIface {
		if a, ok := d.AgentByInterface(iface); ok && !seen[a.ID] {
			seen[a.ID] = true
			ids = append(ids, a.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// reconcileAgent puts one agent's members and device state in line with
// its session.
func (s *Service) reconcileAgent(ctx context.Context, agentID string, revision uint64, byIface map[string][]MemberState) (bool, error) {
	a, sl, err := s.lockAgent(ctx, agentID)
	if err != nil {
		return false, err
	}
	defer sl.lock.Unlock()
	prev := s.current(agentID)
	if prev.Revision != revision {
		return false, nil
	}
	log := s.log.With("agent_id", agentID, "source", string(SourceReconcile))

	var expected []Member
	if prev.LoggedIn() {
		expected = prev.Members
	}
	// Members under the session's interface and, after a directory change,
	// under the agent's current one.
	actual := byIface[a.Interface]
	if prev.Interface != "" && prev.Interface != a.Interface {
		actual = append(slices.Clone(actual), byIface[prev.Interface]...)
	}

	var errs []error
	changed := false
	needPause := false
	for _, want := range expected {
		i := slices.IndexFunc(actual, func(m MemberState) bool { return m.Queue == want.Queue && m.Interface == want.Interface })
		if i < 0 {
			err := s.addMember(ctx, want, prev.Paused(), prev.PauseID)
			switch {
			case errors.Is(err, ErrAlreadyMember):
				continue // added since the snapshot
			case errors.Is(err, ErrNoSuchQueue):
				log.Warn("queue of a logged-in agent not found in Asterisk", "queue", want.Queue)
				continue
			case err != nil:
				errs = append(errs, fmt.Errorf("re-add to queue %q: %w", want.Queue, err))
				continue
			}
			log.Info("re-added missing member", "queue", want.Queue, "interface", want.Interface, "paused", prev.Paused(), "pause_id", prev.PauseID)
			changed = true
			continue
		}
		got := actual[i]
		if got.Paused != prev.Paused() || (prev.Paused() && got.Reason != prev.PauseID) {
			log.Info("pause state differs", "queue", got.Queue, "asterisk_paused", got.Paused, "asterisk_reason", got.Reason, "paused", prev.Paused(), "pause_id", prev.PauseID)
			needPause = true
		}
	}
	for _, got := range actual {
		if slices.ContainsFunc(expected, func(m Member) bool { return m.Queue == got.Queue && m.Interface == got.Interface }) {
			continue
		}
		if err := ignore(ignore(s.removeMember(ctx, got.Queue, got.Interface), ErrNotMember), ErrNoSuchQueue); err != nil {
			errs = append(errs, fmt.Errorf("remove from queue %q: %w", got.Queue, err))
			continue
		}
		log.Info("removed member the session does not have", "queue", got.Queue, "interface", got.Interface)
		changed = true
	}
	if needPause {
		if err := s.pauseMember(ctx, prev.Interface, len(expected), prev.Paused(), prev.PauseID, true); err != nil {
			errs = append(errs, err)
		} else {
			changed = true
		}
	}
	if err := s.setDeviceState(ctx, a, prev.Effective()); err != nil {
		errs = append(errs, err)
	}

	if changed {
		var undo undoStack
		next := prev
		if _, err := s.commit(ctx, sl, a, EventReconciled, nil, prev, next, SourceReconcile, &undo); err != nil {
			errs = append(errs, err)
		}
	}
	return changed, errors.Join(errs...)
}
