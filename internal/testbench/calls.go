package testbench

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"
)

// noSuchChannelMessage is the Message of Asterisk 22's Hangup response when
// no channel has the given name.
const noSuchChannelMessage = "No such channel"

// OriginateRequest is an AMI Originate. Set Channel and either Context, Exten
// and Priority (a dialplan location) or Application and Data.
type OriginateRequest struct {
	// Channel is the channel to create, such as Local/sales@queue-callers/n.
	Channel  string
	Context  string
	Exten    string
	Priority int // 1 when zero and Exten is set
	// Application and Data run an application on the answered channel
	// instead of a dialplan location, such as Wait with Data "30".
	Application string
	Data        string
	// Timeout is how long Asterisk waits for Channel to answer; zero keeps
	// the Asterisk default of 30 s.
	Timeout  time.Duration
	CallerID string
	// Variables are set on the channel before it is dialed. The dialplan of
	// the agentd-agi context reads AGENT, PAUSE_ID and AGENTD_AGI_ADDR.
	Variables map[string]string
	// Async returns as soon as Asterisk has queued the call. The outcome
	// then arrives as an OriginateResponse event with the returned ActionID.
	Async bool
}

// Originate places a call with AMI Originate and returns the action's
// ActionID. Without Async it returns once Channel answered and fails the
// test when it did not.
func (b *Bench) Originate(t testing.TB, req OriginateRequest) string {
	t.Helper()

	conn, err := dialAMI(b.AMIAddr, b.AMIBenchUser, b.AMIBenchSecret, false)
	if err != nil {
		t.Fatalf("Originate(%q): %v", req.Channel, err)
		return ""
	}
	defer conn.close()

	// A synchronous Originate answers only after the channel's timeout.
	timeout := actionTimeout + req.Timeout
	if req.Timeout == 0 {
		timeout += 30 * time.Second
	}
	response, _, err := conn.exchange("Originate", timeout, req.headers())
	if err != nil {
		t.Fatalf("Originate(%q): %v", req.Channel, err)
		return ""
	}
	return response["ActionID"]
}

func (req OriginateRequest) headers() []amiHeader {
	headers := []amiHeader{{"Channel", req.Channel}, {"Async", strconv.FormatBool(req.Async)}}
	headers = appendIfSet(headers, "Context", req.Context)
	headers = appendIfSet(headers, "Exten", req.Exten)
	if req.Exten != "" {
		priority := max(req.Priority, 1)
		headers = append(headers, amiHeader{"Priority", strconv.Itoa(priority)})
	}
	headers = appendIfSet(headers, "Application", req.Application)
	headers = appendIfSet(headers, "Data", req.Data)
	if req.Timeout > 0 {
		headers = append(headers, amiHeader{"Timeout", strconv.FormatInt(req.Timeout.Milliseconds(), 10)})
	}
	headers = appendIfSet(headers, "CallerID", req.CallerID)
	for _, name := range slices.Sorted(maps.Keys(req.Variables)) {
		headers = append(headers, amiHeader{"Variable", name + "=" + req.Variables[name]})
	}
	return headers
}

// Hangup hangs up channel with AMI Hangup. channel is a channel name or, in
// slashes, a regular expression such as /^Local\/tb123@agent-phones-/ that
// hangs up every matching channel. A channel that is already gone is not an
// error, so Hangup suits test cleanup; any other failure marks the test
// failed without stopping it.
func (b *Bench) Hangup(t testing.TB, channel string) {
	t.Helper()

	_, err := b.action("Hangup", amiHeader{"Channel", channel})
	var failed *actionError
	if errors.As(err, &failed) && failed.message == noSuchChannelMessage {
		return
	}
	if err != nil {
		t.Errorf("Hangup(%q): %v", channel, err)
	}
}

// Setvar sets the global dialplan variable name with AMI Setvar without a
// channel. Globals are shared by every test running against the sandbox.
func (b *Bench) Setvar(t testing.TB, name, value string) {
	t.Helper()

	if _, err := b.action("Setvar", amiHeader{"Variable", name}, amiHeader{"Value", value}); err != nil {
		t.Fatalf("Setvar(%q): %v", name, err)
	}
}

// Getvar returns the global dialplan variable name, or the value of a
// dialplan function such as QUEUE_MEMBER(sales,count), with AMI Getvar
// without a channel. An unset variable returns "".
func (b *Bench) Getvar(t testing.TB, name string) string {
	t.Helper()

	response, err := b.action("Getvar", amiHeader{"Variable", name})
	if err != nil {
		t.Fatalf("Getvar(%q): %v", name, err)
		return ""
	}
	return response["Value"]
}
