// Package agenttest provides recording fakes of the interfaces the agent
// domain needs, for tests of agent and of the packages built on it.
package agenttest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/contactcenter/agentd/agent"
)

// Queues is an in-memory app_queue: it keeps members per queue, answers
// like Asterisk does (already there, not there, no such queue) and records
// every call.
type Queues struct {
	mu      sync.Mutex
	known   map[string]bool
	members map[string]map[string]*Member // queue → interface → member
	calls   []string
	// Fail, when set, is called before each action; a non-nil error is
	// returned instead of applying it.
	Fail func(call string) error
	// Hook, when set, runs before each action without the lock held, so a
	// test can block or order concurrent calls.
	Hook func(call string)
}

// Member is a queue member of the fake.
type Member struct {
	agent.Member
	Paused bool
	Reason string
}

// NewQueues returns a fake with the given queues defined.
func NewQueues(queues ...string) *Queues {
	q := &Queues{known: map[string]bool{}, members: map[string]map[string]*Member{}}
	for _, name := range queues {
		q.known[name] = true
		q.members[name] = map[string]*Member{}
	}
	return q
}

func (q *Queues) begin(call string) error {
	if q.Hook != nil {
		q.Hook(call)
	}
	q.mu.Lock()
	q.calls = append(q.calls, call)
	fail := q.Fail
	q.mu.Unlock()
	if fail != nil {
		return fail(call)
	}
	return nil
}

// AddMember implements agent.Queues.
func (q *Queues) AddMember(_ context.Context, m agent.Member) error {
	if err := q.begin(fmt.Sprintf("QueueAdd %s %s penalty=%d name=%s", m.Queue, m.Interface, m.Penalty, m.MemberName)); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.known[m.Queue] {
		return fmt.Errorf("%w: %s", agent.ErrNoSuchQueue, m.Queue)
	}
	if _, ok := q.members[m.Queue][m.Interface]; ok {
		return fmt.Errorf("%w: %s in %s", agent.ErrAlreadyMember, m.Interface, m.Queue)
	}
	q.members[m.Queue][m.Interface] = &Member{Member: m}
	return nil
}

// AddPausedMember implements agent.PausedAdder.
func (q *Queues) AddPausedMember(ctx context.Context, m agent.Member, reason string) error {
	if err := q.begin(fmt.Sprintf("QueueAdd %s %s penalty=%d name=%s paused=true reason=%s", m.Queue, m.Interface, m.Penalty, m.MemberName, reason)); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.known[m.Queue] {
		return fmt.Errorf("%w: %s", agent.ErrNoSuchQueue, m.Queue)
	}
	if _, ok := q.members[m.Queue][m.Interface]; ok {
		return fmt.Errorf("%w: %s in %s", agent.ErrAlreadyMember, m.Interface, m.Queue)
	}
	q.members[m.Queue][m.Interface] = &Member{Member: m, Paused: true, Reason: reason}
	return nil
}

// Members implements agent.MemberLister.
func (q *Queues) Members(context.Context) ([]agent.MemberState, error) {
	if err := q.begin("QueueStatus"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []agent.MemberState
	for _, members := range q.members {
		for _, m := range members {
			out = append(out, agent.MemberState{Member: m.Member, Paused: m.Paused, Reason: m.Reason})
		}
	}
	return out, nil
}

// SetExternal changes a member's pause state as if someone else had,
// recording no call.
func (q *Queues) SetExternal(queue, iface string, paused bool, reason string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if m, ok := q.members[queue][iface]; ok {
		m.Paused, m.Reason = paused, reason
	}
}

// RemoveExternal removes a member as if someone else had, recording no
// call.
func (q *Queues) RemoveExternal(queue, iface string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.members[queue], iface)
}

// RemoveMember implements agent.Queues.
func (q *Queues) RemoveMember(_ context.Context, queue, iface string) error {
	if err := q.begin(fmt.Sprintf("QueueRemove %s %s", queue, iface)); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.known[queue] {
		return fmt.Errorf("%w: %s", agent.ErrNoSuchQueue, queue)
	}
	if _, ok := q.members[queue][iface]; !ok {
		return fmt.Errorf("%w: %s in %s", agent.ErrNotMember, iface, queue)
	}
	delete(q.members[queue], iface)
	return nil
}

// PauseMember implements agent.Queues.
func (q *Queues) PauseMember(_ context.Context, iface string, paused bool, reason string) error {
	if err := q.begin(fmt.Sprintf("QueuePause %s paused=%t reason=%s", iface, paused, reason)); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	found := false
	for _, members := range q.members {
		if m, ok := members[iface]; ok {
			m.Paused, m.Reason, found = paused, reason, true
		}
	}
	if !found {
		return fmt.Errorf("%w: %s", agent.ErrNotMember, iface)
	}
	return nil
}

// Calls returns the recorded calls and clears the record.
func (q *Queues) Calls() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	calls := q.calls
	q.calls = nil
	slices.Sort(calls) // concurrent QueueAdds arrive in any order
	return calls
}

// QueueMembers returns the members of queue, sorted by interface.
func (q *Queues) QueueMembers(queue string) []Member {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Member
	for _, m := range q.members[queue] {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Interface, b.Interface) })
	return out
}

// Member returns the member iface of queue, and false when iface is not
// in queue.
func (q *Queues) Member(queue, iface string) (Member, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m, ok := q.members[queue][iface]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

// AddExternal adds a member as if someone else had added it, recording no
// call.
func (q *Queues) AddExternal(m agent.Member, paused bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.members[m.Queue][m.Interface] = &Member{Member: m, Paused: paused}
}

// DeviceStates records device states.
type DeviceStates struct {
	mu     sync.Mutex
	states map[string]string
	calls  []string
	// Fail, when set, makes SetDeviceState return its result when non-nil.
	Fail func(device, state string) error
}

// NewDeviceStates returns an empty recorder.
func NewDeviceStates() *DeviceStates {
	return &DeviceStates{states: map[string]string{}}
}

// SetDeviceState implements agent.DeviceStates.
func (d *DeviceStates) SetDeviceState(_ context.Context, device, state string) error {
	d.mu.Lock()
	fail := d.Fail
	d.calls = append(d.calls, device+"="+state)
	d.mu.Unlock()
	if fail != nil {
		if err := fail(device, state); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.states[device] = state
	return nil
}

// State returns the last state set for device.
func (d *DeviceStates) State(device string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.states[device]
}

// Calls returns the recorded calls and clears the record.
func (d *DeviceStates) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	calls := d.calls
	d.calls = nil
	return calls
}

// Store is an in-memory agent.Store and agent.Stager that records every
// change. A staged change is recorded when it is released.
type Store struct {
	mu        sync.Mutex
	sessions  map[string]agent.Session
	changes   []agent.Change
	withdrawn []agent.Change
	open      int
	// Fail, when set, makes Commit and Stage return its result when
	// non-nil.
	Fail func(agent.Change) error
}

// Stage implements agent.Stager.
func (s *Store) Stage(_ context.Context, c agent.Change) (agent.StagedChange, error) {
	s.mu.Lock()
	fail := s.Fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(c); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.open++
	s.mu.Unlock()
	return &stagedChange{s: s, c: c}, nil
}

type stagedChange struct {
	s     *Store
	c     agent.Change
	ended bool
}

func (st *stagedChange) end() error {
	if st.ended {
		return fmt.Errorf("staged change of agent %s ended twice", st.c.Agent.ID)
	}
	st.ended = true
	st.s.open--
	return nil
}

// Release records the change as Commit does.
func (st *stagedChange) Release(context.Context) error {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	if err := st.end(); err != nil {
		return err
	}
	st.s.sessions[st.c.Session.AgentID] = st.c.Session
	st.s.changes = append(st.s.changes, st.c)
	return nil
}

// Withdraw records the change as withdrawn.
func (st *stagedChange) Withdraw(context.Context) error {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	if err := st.end(); err != nil {
		return err
	}
	st.s.withdrawn = append(st.s.withdrawn, st.c)
	return nil
}

// Withdrawn returns the withdrawn staged changes in order and clears the
// record.
func (s *Store) Withdrawn() []agent.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.withdrawn
	s.withdrawn = nil
	return w
}

// OpenStaged returns the number of staged changes neither released nor
// withdrawn.
func (s *Store) OpenStaged() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{sessions: map[string]agent.Session{}}
}

// Sessions implements agent.Store.
func (s *Store) Sessions(context.Context) ([]agent.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]agent.Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out, nil
}

// Commit implements agent.Store.
func (s *Store) Commit(_ context.Context, c agent.Change) error {
	s.mu.Lock()
	fail := s.Fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(c); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[c.Session.AgentID] = c.Session
	s.changes = append(s.changes, c)
	return nil
}

// Changes returns the committed changes in order and clears the record.
func (s *Store) Changes() []agent.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	changes := s.changes
	s.changes = nil
	return changes
}
