package agent

import "context"

// Queues applies queue membership to Asterisk (AMI QueueAdd, QueueRemove
// and QueuePause). Implementations return errors that wrap ErrNoSuchQueue,
// ErrAlreadyMember, ErrNotMember, ErrAsteriskUnavailable or an
// *AsteriskError, so the use cases can tell them apart with errors.Is/As.
type Queues interface {
	// AddMember sends QueueAdd with Paused=false. A member already in the
	// queue gives an error wrapping ErrAlreadyMember, an unknown queue one
	// wrapping ErrNoSuchQueue.
	AddMember(ctx context.Context, m Member) error
	// RemoveMember sends QueueRemove. A member not in the queue gives an
	// error wrapping ErrNotMember.
	RemoveMember(ctx context.Context, queue, iface string) error
	// PauseMember sends QueuePause without Queue, so it acts on every queue
	// the interface is a member of. A non-empty reason is sent as Reason,
	// also when unpausing, so queue_log names the pause that ended.
	// An interface in no queue gives an error wrapping ErrNotMember.
	PauseMember(ctx context.Context, iface string, paused bool, reason string) error
}

// DeviceStates sets the state of an ARI-controlled device such as
// Stasis:agent-1001. state is an Asterisk device state name (NOT_INUSE,
// INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD).
type DeviceStates interface {
	SetDeviceState(ctx context.Context, device, state string) error
}

// Store keeps sessions durably and publishes each change as an event.
type Store interface {
	// Sessions returns every stored session, to restore them at start.
	Sessions(ctx context.Context) ([]Session, error)
	// Commit stores c.Session and publishes c as one event. It returns nil
	// only once the change is durable. Commits for one agent arrive in the
	// order the changes were applied.
	Commit(ctx context.Context, c Change) error
}

// Stager is a Store that can write a change durably before the Asterisk
// actions of its request finish, so the disk write overlaps them. The
// use cases stage the change they expect and, once Asterisk has done its
// part, release it, or withdraw it when the request failed or ended
// differently.
type Stager interface {
	// Stage makes c durable but does not publish it yet. Every staged
	// change must end with Release or Withdraw. A crash before either
	// counts as Release: the reconciliation after the restart makes
	// Asterisk match the change.
	Stage(ctx context.Context, c Change) (StagedChange, error)
}

// StagedChange is a change written by Stager.Stage.
type StagedChange interface {
	// Release publishes the change, with the guarantees of Store.Commit.
	Release(ctx context.Context) error
	// Withdraw drops the change durably. On an error it is dropped from
	// this process, but a restart may count it as done.
	Withdraw(ctx context.Context) error
}

// MemberState is a queue member as Asterisk reports it.
type MemberState struct {
	Member
	Paused bool
	Reason string
}

// MemberLister lists every member of every queue (AMI QueueStatus). The
// reconciliation needs it; a Queues that does not implement it cannot be
// reconciled.
type MemberLister interface {
	Members(ctx context.Context) ([]MemberState, error)
}

// PausedAdder adds a member already paused with a reason (QueueAdd with
// Paused and Reason), so a restored member is never offered a call in
// between. Without it, the member is added and then paused.
type PausedAdder interface {
	AddPausedMember(ctx context.Context, m Member, reason string) error
}
