package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Status is the outcome of a use case: the agent, its session after the
// change, and the pause it is in.
type Status struct {
	Agent   Agent
	Session Session
	Pause   *Pause // nil unless the agent is paused
}

// Result is the outcome of a use case that succeeded.
type Result struct {
	Status Status
	// Warnings lists problems that did not fail the request, such as a
	// queue of the agent that Asterisk does not know.
	Warnings []Warning
}

// Warning is a problem that did not fail a request.
type Warning struct {
	Code  string // stable code, e.g. "no_such_queue"
	Queue string
}

// Warning codes.
const WarningNoSuchQueue = "no_such_queue"

// DeviceStateMap maps session states to Asterisk device states for the
// agent's Stasis:agent-<id> device.
type DeviceStateMap map[State]string

// DefaultDeviceStates is the mapping used when the configuration sets none.
func DefaultDeviceStates() DeviceStateMap {
	return DeviceStateMap{
		StateOffline:     "UNAVAILABLE",
		StateReady:       "NOT_INUSE",
		StatePaused:      "ONHOLD",
		StateRinging:     "RINGING",
		StateOnCall:      "INUSE",
		StateUnavailable: "UNAVAILABLE",
	}
}

// MemberPolicy is the action agentd takes when a member of one of its
// agents is added or removed outside agentd.
type MemberPolicy string

// Member policies.
const (
	// MemberRestore puts Asterisk back to the stored session: a removed
	// member of a logged-in agent is added again, an added member that the
	// session does not have is removed.
	MemberRestore MemberPolicy = "restore"
	// MemberAdopt changes the stored session of a logged-in agent to
	// include or drop the member.
	MemberAdopt MemberPolicy = "adopt"
)

// Defaults of the outside-change settings.
const (
	DefaultAutopausePauseID = "autopause"
	DefaultExternalPauseID  = PauseSupervisor
)

// Config holds what a Service needs.
type Config struct {
	Directory    *Directory
	Queues       Queues
	DeviceStates DeviceStates
	Store        Store
	StateMap     DeviceStateMap // nil means DefaultDeviceStates
	Logger       *slog.Logger
	Now          func() time.Time // nil means time.Now

	// AutopausePauseID is the pause id given to an agent that app_queue
	// paused by itself (autopause, reason "Auto-Pause"). Default
	// DefaultAutopausePauseID.
	AutopausePauseID string
	// ExternalPauseID is the pause id given to an agent paused outside
	// agentd without a reason, e.g. by "queue pause member" on the CLI.
	// Default DefaultExternalPauseID.
	ExternalPauseID string
	// MemberPolicy applies to members added or removed outside agentd.
	// Default MemberRestore.
	MemberPolicy MemberPolicy
	// UnavailableLogout, when positive, logs out an agent whose endpoint
	// stayed offline that long. Zero keeps the agent logged in.
	UnavailableLogout time.Duration
	// RestoreRequired makes the use cases fail with ErrStoreUnavailable
	// until Restore succeeded, so nothing is applied over sessions not yet
	// read from the store. The daemon sets it; tests that start from no
	// sessions leave it off.
	RestoreRequired bool
}

// Service runs the agent use cases. Requests for one agent are applied one
// at a time in arrival order; requests for different agents run in parallel.
type Service struct {
	directory atomic.Pointer[Directory]
	queues    Queues
	devices   DeviceStates
	store     Store
	stateMap  DeviceStateMap
	log       *slog.Logger
	now       func() time.Time
	echoes    *echoes
	outside   outsideConfig

	// restored is set once the stored sessions are loaded.
	restored atomic.Bool

	// bg runs the handlers of Asterisk events until Close. bgMu orders
	// bg.Go after Close has begun: bg.Wait must not run alongside a
	// bg.Go that starts from zero.
	bg       sync.WaitGroup
	bgMu     sync.RWMutex
	bgClosed bool
	bgCtx    context.Context
	bgCancel context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*slot
}

// outsideConfig holds the settings for changes made outside agentd.
type outsideConfig struct {
	autopausePauseID  string
	externalPauseID   string
	memberPolicy      MemberPolicy
	unavailableLogout time.Duration
}

// slot is the per-agent lock and the agent's current session.
type slot struct {
	lock    fifoLock
	session atomic.Pointer[Session]

	// Asterisk events for the agent, handled in arrival order by one
	// goroutine at a time.
	eventsMu      sync.Mutex
	events        []func()
	eventsRunning bool

	// calls maps the agent's live channels to their call state; guarded
	// by lock.
	calls map[string]CallState
	// logoutTimer logs the agent out after its endpoint stayed offline.
	logoutTimer *time.Timer
	// offlineSince is when the agent's endpoint went offline, zero while
	// it is online or unknown. It is kept while the agent is logged out,
	// so a login shows the agent unavailable; guarded by lock.
	offlineSince time.Time
	// restores holds the recent restores of each queue's member, to stop
	// a restore loop with another system; guarded by lock.
	restores map[string][]time.Time
}

// NewService returns a Service with no sessions; call Restore to load them.
func NewService(cfg Config) (*Service, error) {
	if cfg.Directory == nil || cfg.Queues == nil || cfg.DeviceStates == nil || cfg.Store == nil {
		return nil, errors.New("agent: NewService needs a directory, queues, device states and a store")
	}
	s := &Service{
		queues:   cfg.Queues,
		devices:  cfg.DeviceStates,
		store:    cfg.Store,
		stateMap: cfg.StateMap,
		log:      cfg.Logger,
		now:      cfg.Now,
		sessions: make(map[string]*slot),
	}
	if s.stateMap == nil {
		s.stateMap = DefaultDeviceStates()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	// Echo expiry is internal bookkeeping, so it runs on the real clock.
	s.echoes = newEchoes(time.Now)
	s.outside = outsideConfig{
		autopausePauseID:  cmp.Or(cfg.AutopausePauseID, DefaultAutopausePauseID),
		externalPauseID:   cmp.Or(cfg.ExternalPauseID, DefaultExternalPauseID),
		memberPolicy:      cmp.Or(cfg.MemberPolicy, MemberRestore),
		unavailableLogout: cfg.UnavailableLogout,
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.directory.Store(cfg.Directory)
	s.restored.Store(!cfg.RestoreRequired)
	return s, nil
}

// Restored reports whether the stored sessions are loaded, so requests and
// reconciliation can act.
func (s *Service) Restored() bool {
	return s.restored.Load()
}

// Close stops the handling of Asterisk events and waits for handlers in
// flight. Requests may still be served.
func (s *Service) Close() {
	s.bgCancel()
	s.bgMu.Lock()
	s.bgClosed = true
	s.bgMu.Unlock()
	s.mu.Lock()
	slots := make([]*slot, 0, len(s.sessions))
	for _, sl := range s.sessions {
		slots = append(slots, sl)
	}
	s.mu.Unlock()
	for _, sl := range slots {
		s.stopLogoutTimer(sl)
	}
	s.bg.Wait()
}

// Directory returns the directory in force.
func (s *Service) Directory() *Directory {
	return s.directory.Load()
}

// SetDirectory replaces the directory. Sessions are kept; use Reload to
// also log out agents that the new directory no longer lists.
func (s *Service) SetDirectory(d *Directory) {
	s.directory.Store(d)
}

// Reload replaces the directory and logs out every logged-in agent that it
// no longer lists, with source reconcile. Without this, a removed agent
// would stay a member of its queues with no way to log it out. It returns
// the ids logged out and the errors of those that failed. A failed one
// stays logged in and is tried again at the next reload.
func (s *Service) Reload(ctx context.Context, d *Directory) ([]string, error) {
	old := s.Directory()
	s.directory.Store(d)

	var removed []string
	var errs []error
	for _, sess := range s.Sessions() {
		if _, still := d.Agent(sess.AgentID); still || !sess.LoggedIn() {
			continue
		}
		a, ok := old.Agent(sess.AgentID)
		if !ok {
			continue // removed at an earlier reload whose logout failed; keep its recorded members
		}
		if err := s.logoutRemoved(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("log out agent %q removed from the directory: %w", a.ID, err))
			continue
		}
		removed = append(removed, a.ID)
	}
	return removed, errors.Join(errs...)
}

// logoutRemoved logs out an agent that is no longer in the directory,
// using its last directory entry.
func (s *Service) logoutRemoved(ctx context.Context, a Agent) error {
	sl, err := s.lockSlot(ctx, a.ID)
	if err != nil {
		return err
	}
	defer sl.lock.Unlock()
	_, err = s.logoutLocked(ctx, a, sl, SourceReconcile)
	return err
}

// Restore loads the stored sessions into memory. It is called once at
// start, before requests are served.
func (s *Service) Restore(ctx context.Context) (int, error) {
	sessions, err := s.store.Sessions(ctx)
	if err != nil {
		return 0, fmt.Errorf("restore sessions: %w", err)
	}
	for _, sess := range sessions {
		s.slot(sess.AgentID).session.Store(&sess)
	}
	s.restored.Store(true)
	return len(sessions), nil
}

// Sessions returns a snapshot of every known session.
func (s *Service) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessions))
	for _, sl := range s.sessions {
		if p := sl.session.Load(); p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// RangeSessions calls fn with each current session, read in place rather
// than copied, for callers that run often, such as the systemd status
// line. fn runs under the service's lock: it must not keep or change the
// session, nor call the Service.
func (s *Service) RangeSessions(fn func(*Session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.sessions {
		if p := sl.session.Load(); p != nil {
			fn(p)
		}
	}
}

// Status returns the agent's current state from memory, without a round
// trip to Asterisk or the store.
func (s *Service) Status(agentID string) (Status, error) {
	a, ok := s.Directory().Agent(agentID)
	if !ok {
		return Status{}, fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	if !s.restored.Load() {
		return Status{}, ErrNotRestored
	}
	return s.status(a, s.current(agentID)), nil
}

func (s *Service) status(a Agent, sess Session) Status {
	st := Status{Agent: a, Session: sess}
	if sess.Paused() {
		p := s.Directory().PauseOrUnknown(sess.PauseID)
		st.Pause = &p
	}
	return st
}

// slot returns the agent's slot, creating it on first use.
func (s *Service) slot(agentID string) *slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.sessions[agentID]
	if !ok {
		sl = &slot{}
		s.sessions[agentID] = sl
	}
	return sl
}

// current returns the agent's session, or an OFFLINE session when the
// agent has none yet.
func (s *Service) current(agentID string) Session {
	s.mu.Lock()
	sl, ok := s.sessions[agentID]
	s.mu.Unlock()
	if ok {
		if p := sl.session.Load(); p != nil {
			return *p
		}
	}
	return Session{AgentID: agentID, State: StateOffline}
}

// ErrNotRestored is returned while the stored sessions are not loaded. It
// wraps ErrStoreUnavailable, so it has that error's code.
var ErrNotRestored = fmt.Errorf("%w: the stored sessions are not loaded yet, because NATS has not responded since agentd started", ErrStoreUnavailable)

// lockAgent looks the agent up and takes its lock in arrival order.
func (s *Service) lockAgent(ctx context.Context, agentID string) (Agent, *slot, error) {
	a, ok := s.Directory().Agent(agentID)
	if !ok {
		return Agent{}, nil, fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	sl, err := s.lockSlot(ctx, agentID)
	return a, sl, err
}

// lockSlot takes the agent's lock in arrival order.
func (s *Service) lockSlot(ctx context.Context, agentID string) (*slot, error) {
	if !s.restored.Load() {
		return nil, ErrNotRestored
	}
	sl := s.slot(agentID)
	if err := sl.lock.Lock(ctx); err != nil {
		return nil, fmt.Errorf("wait for agent %q: %w", agentID, err)
	}
	return sl, nil
}

// Pending returns how many requests for the agent are running or waiting
// for their turn.
func (s *Service) Pending(agentID string) int {
	s.mu.Lock()
	sl, ok := s.sessions[agentID]
	s.mu.Unlock()
	if !ok {
		return 0
	}
	return sl.lock.load()
}
