package testbench

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// notThereMessage is the Message of Asterisk 22's QueueRemove response when
// the interface is not a member of the queue.
const notThereMessage = "Unable to remove interface: Not there"

// QueueMember is one member of a queue as AMI QueueStatus reports it.
type QueueMember struct {
	Interface      string
	MemberName     string
	StateInterface string
	Penalty        int
	Paused         bool
	PausedReason   string
	// Status is the member's device state as an app_queue number: 0 UNKNOWN,
	// 1 NOT_INUSE, 2 INUSE, 3 BUSY, 4 INVALID, 5 UNAVAILABLE, 6 RINGING,
	// 7 RINGINUSE, 8 ONHOLD.
	Status int
}

// QueueMembers returns the members of queue from AMI QueueStatus. It fails
// the test when Asterisk has no such queue.
func (b *Bench) QueueMembers(t testing.TB, queue string) []QueueMember {
	t.Helper()

	conn, err := dialAMI(b.AMIAddr, b.AMIBenchUser, b.AMIBenchSecret, false)
	if err != nil {
		t.Fatalf("QueueMembers(%q): %v", queue, err)
		return nil
	}
	defer conn.close()

	events, err := conn.doList("QueueStatus", amiHeader{"Queue", queue})
	if err != nil {
		t.Fatalf("QueueMembers(%q): %v", queue, err)
		return nil
	}

	members, found, err := parseQueueStatus(events)
	if err != nil {
		t.Fatalf("QueueMembers(%q): %v", queue, err)
		return nil
	}
	if !found {
		t.Fatalf("QueueMembers(%q): no such queue in Asterisk (QueueStatus sent no QueueParams)", queue)
		return nil
	}
	return members
}

// parseQueueStatus reads the QueueParams and QueueMember events of one
// QueueStatus. found reports whether the queue exists, because Asterisk 22
// returns an empty list rather than an error for an unknown queue. In QueueStatus,
// unlike the QueueMember* events, Asterisk 22 names the interface Location
// and the member name Name.
func parseQueueStatus(events []map[string]string) (members []QueueMember, found bool, err error) {
	for _, event := range events {
		switch event["Event"] {
		case "QueueParams":
			found = true
		case "QueueMember":
			member, err := parseQueueMember(event)
			if err != nil {
				return nil, found, err
			}
			members = append(members, member)
		}
	}
	return members, found, nil
}

func parseQueueMember(event map[string]string) (QueueMember, error) {
	penalty, err := strconv.Atoi(event["Penalty"])
	if err != nil {
		return QueueMember{}, fmt.Errorf("%w: QueueMember Penalty %q", errMalformedEvent, event["Penalty"])
	}
	status, err := strconv.Atoi(event["Status"])
	if err != nil {
		return QueueMember{}, fmt.Errorf("%w: QueueMember Status %q", errMalformedEvent, event["Status"])
	}
	return QueueMember{
		Interface:      event["Location"],
		MemberName:     event["Name"],
		StateInterface: event["StateInterface"],
		Penalty:        penalty,
		Paused:         event["Paused"] == "1",
		PausedReason:   event["PausedReason"],
		Status:         status,
	}, nil
}

// AddMember adds m to queue with AMI QueueAdd, the way agentd does, and
// removes it again when the test ends. m.Status is ignored; m.PausedReason
// is sent as Reason. It fails the test when Asterisk rejects the member.
func (b *Bench) AddMember(t testing.TB, queue string, m QueueMember) {
	t.Helper()

	headers := []amiHeader{
		{"Queue", queue},
		{"Interface", m.Interface},
		{"Penalty", strconv.Itoa(m.Penalty)},
		{"Paused", strconv.FormatBool(m.Paused)},
	}
	headers = appendIfSet(headers, "MemberName", m.MemberName)
	headers = appendIfSet(headers, "StateInterface", m.StateInterface)
	headers = appendIfSet(headers, "Reason", m.PausedReason)

	if _, err := b.action("QueueAdd", headers...); err != nil {
		t.Fatalf("AddMember(%q, %q): %v", queue, m.Interface, err)
		return
	}
	t.Cleanup(func() { b.RemoveMember(t, queue, m.Interface) })
}

// RemoveMember removes iface from queue with AMI QueueRemove. A member that
// is already gone is not an error, so RemoveMember suits test cleanup. Any
// other failure marks the test failed without stopping it, so the remaining
// cleanups still run.
func (b *Bench) RemoveMember(t testing.TB, queue, iface string) {
	t.Helper()

	_, err := b.action("QueueRemove", amiHeader{"Queue", queue}, amiHeader{"Interface", iface})
	var failed *actionError
	if errors.As(err, &failed) && failed.message == notThereMessage {
		return
	}
	if err != nil {
		t.Errorf("RemoveMember(%q, %q): %v", queue, iface, err)
	}
}

func appendIfSet(headers []amiHeader, key, value string) []amiHeader {
	if value == "" {
		return headers
	}
	return append(headers, amiHeader{key, value})
}
