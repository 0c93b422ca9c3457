package ami

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/contactcenter/agentd/agent"
)

// ErrInvalidEvent is returned by the event decoders for a message of
// another event type or with a missing or invalid field.
var ErrInvalidEvent = errors.New("ami: invalid event")

// Error messages of app_queue (apps/app_queue.c, the same in Asterisk 20,
// 21 and 22) that the use cases tell apart.
var (
	queueAddErrors = map[string]error{
		"Unable to add interface: Already there":          agent.ErrAlreadyMember,
		"Unable to add interface to queue: No such queue": agent.ErrNoSuchQueue,
	}
	queueRemoveErrors = map[string]error{
		"Unable to remove interface: Not there":                agent.ErrNotMember,
		"Unable to remove interface from queue: No such queue": agent.ErrNoSuchQueue,
	}
	queuePauseErrors = map[string]error{
		"Interface not found": agent.ErrNotMember,
	}
)

// Queues implements agent.Queues with the AMI actions of app_queue.
type Queues struct {
	sender ActionSender
}

var (
	_ agent.Queues       = (*Queues)(nil)
	_ agent.MemberLister = (*Queues)(nil)
	_ agent.PausedAdder  = (*Queues)(nil)
)

// NewQueues returns a Queues that sends its actions through s, a Client or
// a Pool.
func NewQueues(s ActionSender) *Queues {
	return &Queues{sender: s}
}

// AddMember sends QueueAdd with Paused=false, so the member can take calls
// at once.
func (q *Queues) AddMember(ctx context.Context, m agent.Member) error {
	return q.add(ctx, m, false, "")
}

// AddPausedMember sends QueueAdd with Paused=true and reason as Reason, so
// the member is never offered a call before it is paused.
func (q *Queues) AddPausedMember(ctx context.Context, m agent.Member, reason string) error {
	return q.add(ctx, m, true, reason)
}

func (q *Queues) add(ctx context.Context, m agent.Member, paused bool, reason string) error {
	msg := NewAction(ActionQueueAdd,
		"Queue", m.Queue,
		"Interface", m.Interface,
		"Penalty", strconv.Itoa(m.Penalty),
		"Paused", strconv.FormatBool(paused))
	if m.MemberName != "" {
		msg.Add("MemberName", m.MemberName)
	}
	if paused && reason != "" {
		msg.Add("Reason", reason)
	}

	_, err := q.sender.Action(ctx, msg)
	if err != nil {
		return fmt.Errorf("add %s to queue %s: %w", m.Interface, m.Queue, mapQueueError(err, queueAddErrors))
	}
	return nil
}

// RemoveMember sends QueueRemove.
func (q *Queues) RemoveMember(ctx context.Context, queue, iface string) error {
	msg := NewAction(ActionQueueRemove, "Queue", queue, "Interface", iface)

	_, err := q.sender.Action(ctx, msg)
	if err != nil {
		return fmt.Errorf("remove %s from queue %s: %w", iface, queue, mapQueueError(err, queueRemoveErrors))
	}
	return nil
}

// PauseMember sends QueuePause without Queue, which app_queue applies to
// every queue the interface is a member of. A non-empty reason is sent as
// Reason also when unpausing: Asterisk 22 then writes it in the UNPAUSE
// line of queue_log, so reports see which pause ended.
func (q *Queues) PauseMember(ctx context.Context, iface string, paused bool, reason string) error {
	msg := NewAction(ActionQueuePause, "Interface", iface, "Paused", strconv.FormatBool(paused))
	if reason != "" {
		msg.Add("Reason", reason)
	}

	_, err := q.sender.Action(ctx, msg)
	if err != nil {
		return fmt.Errorf("set paused=%t on %s: %w", paused, iface, mapQueueError(err, queuePauseErrors))
	}
	return nil
}

// QueueStatus sends QueueStatus for one queue, or for every queue when
// queue is "", and returns the members listed in its QueueMember events.
// For an unknown queue, app_queue returns an empty list, not an error.
func (q *Queues) QueueStatus(ctx context.Context, queue string) ([]QueueMember, error) {
	msg := NewAction(ActionQueueStatus)
	if queue != "" {
		msg.Add("Queue", queue)
	}

	_, events, err := q.sender.ActionList(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("queue status of %q: %w", queue, mapQueueError(err, nil))
	}

	var members []QueueMember
	for _, ev := range events {
		if !strings.EqualFold(ev.Event(), EventQueueMember) {
			continue
		}
		m, err := ParseQueueMember(ev)
		if err != nil {
			return nil, fmt.Errorf("queue status of %q: %w", queue, err)
		}
		members = append(members, m)
	}
	return members, nil
}

// mapQueueError turns an error of Client.Action into the errors of
// agent.Queues. It keeps the ami error in the chain, except for error
// responses that match no sentinel, which become *agent.AsteriskError.
func mapQueueError(err error, known map[string]error) error {
	var respErr *ResponseError
	switch {
	case errors.As(err, &respErr):
		if sentinel, ok := known[respErr.Message]; ok {
			return fmt.Errorf("%w: %w", sentinel, err)
		}
		return &agent.AsteriskError{Action: respErr.Action, Message: respErr.Message}
	case errors.Is(err, ErrNotConnected), errors.Is(err, ErrTimeout):
		return fmt.Errorf("%w: %w", agent.ErrAsteriskUnavailable, err)
	}
	return err
}

// Members returns every member of every queue, for reconciliation.
func (q *Queues) Members(ctx context.Context) ([]agent.MemberState, error) {
	members, err := q.QueueStatus(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]agent.MemberState, 0, len(members))
	for _, m := range members {
		out = append(out, agent.MemberState{
			Member: agent.Member{Queue: m.Queue, Interface: m.Interface, MemberName: m.MemberName, Penalty: m.Penalty},
			Paused: m.Paused,
			Reason: m.PausedReason,
		})
	}
	return out, nil
}

// QueueMember is one member of a queue as app_queue reports it.
type QueueMember struct {
	Queue          string
	MemberName     string
	Interface      string
	StateInterface string
	Membership     string // "dynamic", "static" or "realtime"
	Penalty        int
	// Status is the device state code of StateInterface: 0 UNKNOWN,
	// 1 NOT_INUSE, 2 INUSE, 3 BUSY, 4 INVALID, 5 UNAVAILABLE, 6 RINGING,
	// 7 RINGINUSE, 8 ONHOLD.
	Status       int
	Paused       bool
	PausedReason string
	InCall       bool
}

// ParseQueueMember decodes a member from a QueueMember event of the
// QueueStatus action, which names the member Name and the interface
// Location, or from a QueueMemberAdded, QueueMemberRemoved,
// QueueMemberStatus or QueueMemberPause event, which use MemberName and
// Interface. Queue and the interface are required. A numeric or boolean
// field that is present must be valid, and an absent one decodes to zero.
func ParseQueueMember(msg Message) (QueueMember, error) {
	m := QueueMember{
		Queue:          msg.Get("Queue"),
		MemberName:     firstValue(msg, "Name", "MemberName"),
		Interface:      firstValue(msg, "Location", "Interface"),
		StateInterface: msg.Get("StateInterface"),
		Membership:     msg.Get("Membership"),
		PausedReason:   msg.Get("PausedReason"),
	}
	if m.Queue == "" || m.Interface == "" {
		return QueueMember{}, fmt.Errorf("%w: %s event without Queue or Interface", ErrInvalidEvent, msg.Event())
	}

	var err error
	if m.Penalty, err = intField(msg, "Penalty"); err != nil {
		return QueueMember{}, err
	}
	if m.Status, err = intField(msg, "Status"); err != nil {
		return QueueMember{}, err
	}
	if m.Paused, err = boolField(msg, "Paused"); err != nil {
		return QueueMember{}, err
	}
	if m.InCall, err = boolField(msg, "InCall"); err != nil {
		return QueueMember{}, err
	}
	return m, nil
}

// QueueMemberPause is a QueueMemberPause event. app_queue sends it for
// every pause and unpause, also when the state does not change. Since
// Asterisk 20.6, 21.1 and 22.0 an unpause can carry a reason too.
type QueueMemberPause struct {
	Queue        string
	MemberName   string
	Interface    string
	Paused       bool
	PausedReason string
}

// ParseQueueMemberPause decodes a QueueMemberPause event.
func ParseQueueMemberPause(msg Message) (QueueMemberPause, error) {
	if !strings.EqualFold(msg.Event(), EventQueueMemberPause) {
		return QueueMemberPause{}, fmt.Errorf("%w: got %q, expected %s", ErrInvalidEvent, msg.Event(), EventQueueMemberPause)
	}

	ev := QueueMemberPause{
		Queue:        msg.Get("Queue"),
		MemberName:   msg.Get("MemberName"),
		Interface:    msg.Get("Interface"),
		PausedReason: msg.Get("PausedReason"),
	}
	if ev.Queue == "" || ev.Interface == "" {
		return QueueMemberPause{}, fmt.Errorf("%w: %s without Queue or Interface", ErrInvalidEvent, EventQueueMemberPause)
	}
	if _, ok := msg.Lookup("Paused"); !ok {
		return QueueMemberPause{}, fmt.Errorf("%w: %s without Paused", ErrInvalidEvent, EventQueueMemberPause)
	}

	var err error
	if ev.Paused, err = boolField(msg, "Paused"); err != nil {
		return QueueMemberPause{}, err
	}
	return ev, nil
}

func firstValue(msg Message, keys ...string) string {
	for _, k := range keys {
		if v, ok := msg.Lookup(k); ok && v != "" {
			return v
		}
	}
	return ""
}

func intField(msg Message, key string) (int, error) {
	v, ok := msg.Lookup(key)
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%w: %s has %s %q, expected an integer", ErrInvalidEvent, msg.Event(), key, v)
	}
	return n, nil
}

// boolField decodes the integers that app_queue writes for flags, and the
// words that Asterisk's ast_true and ast_false accept.
func boolField(msg Message, key string) (bool, error) {
	v, ok := msg.Lookup(key)
	if !ok || v == "" {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "true", "y", "t", "on":
		return true, nil
	case "0", "no", "false", "n", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s has %s %q, expected 0 or 1", ErrInvalidEvent, msg.Event(), key, v)
}
