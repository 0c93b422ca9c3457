package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/testbench"
)

// softphone is the PJSIP endpoint of test/asterisk/etc/pjsip.conf whose
// static contact Asterisk qualifies with OPTIONS every second.
const softphone = "agentd-softphone"

// softphoneContact returns the host:port of the softphone's contact, from
// "pjsip show aor". A sandbox started before pjsip.conf existed has no
// such endpoint: the test then skips, or fails under
// AGENTD_REQUIRE_ASTERISK=1.
func softphoneContact(t *testing.T, bench *testbench.Bench) string {
	t.Helper()
	out := bench.CLI(t, "pjsip show aor "+softphone)
	for line := range strings.Lines(out) {
		key, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "contact" {
			continue
		}
		_, hostport, ok := strings.Cut(strings.TrimSpace(value), "@")
		require.True(t, ok, "contact without user part: %s", value)
		return hostport
	}
	msg := "the sandbox has no PJSIP endpoint " + softphone + " (pjsip.conf); restart it with scripts/asterisk-sandbox.sh restart"
	if os.Getenv(testbench.EnvRequireAsterisk) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// sipResponder responds to SIP OPTIONS with 200 OK on a UDP address, as a
// phone does to Asterisk's qualify.
type sipResponder struct {
	conn *net.UDPConn
	done chan struct{}
}

func startSIPResponder(t *testing.T, addr string) *sipResponder {
	t.Helper()
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	conn, err := net.ListenUDP("udp", udpAddr)
	require.NoError(t, err, "the softphone contact address must be free")
	r := &sipResponder{conn: conn, done: make(chan struct{})}
	go r.serve()
	t.Cleanup(r.stop)
	return r
}

func (r *sipResponder) serve() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	for {
		n, peer, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if resp := sipOK(string(buf[:n])); resp != "" {
			_, _ = r.conn.WriteToUDP([]byte(resp), peer)
		}
	}
}

// stop closes the socket, so Asterisk's next OPTIONS gets no response. It
// is safe to call twice.
func (r *sipResponder) stop() {
	_ = r.conn.Close()
	<-r.done
}

// sipOK returns a 200 OK for an OPTIONS request, copying the headers RFC
// 3261 section 8.2.6.2 requires in a response (Via, From, To, Call-ID,
// CSeq, in full or compact form), or "" for anything else.
func sipOK(request string) string {
	lines := strings.Split(request, "\r\n")
	if !strings.HasPrefix(lines[0], "OPTIONS ") {
		return ""
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, line := range lines[1:] {
		if line == "" {
			break
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq":
			b.WriteString(line + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// waitEndpointState waits until ARI reports the softphone in state
// (online or offline).
func waitEndpointState(t *testing.T, bench *testbench.Bench, state string) {
	t.Helper()
	eventually(t, 10*time.Second, "endpoint PJSIP/"+softphone+" "+state, func() string {
		got, err := endpointState(bench)
		if err != nil {
			return err.Error()
		}
		if got != state {
			return got
		}
		return ""
	})
}

func endpointState(bench *testbench.Bench) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, bench.ARIURL+"/ari/endpoints/PJSIP/"+softphone, nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(bench.ARIUser, bench.ARIPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /ari/endpoints/PJSIP/%s: %s", softphone, resp.Status)
	}
	var body struct {
		State string `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if body.State == "" {
		return "", errors.New("endpoint without state")
	}
	return body.State, nil
}

func newSoftphoneAgent(queues ...string) e2eAgent {
	a := newAgent(queues...)
	a.Interface = "PJSIP/" + softphone
	return a
}

func TestEndpointOfflineMarksUnavailable(t *testing.T) {
	bench := testbench.Require(t)
	contact := softphoneContact(t, bench)
	a := newSoftphoneAgent("sales")
	t.Cleanup(func() { removeMembers(t, bench, a) })
	phone := startSIPResponder(t, contact)
	waitEndpointState(t, bench, "online")
	f := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: t.TempDir()})
	t.Cleanup(func() { f.post(t, a, "/api/v1/asterisk_logout/", nil) })
	js := openJetStream(t, f.natsURL)
	f.mustPost(t, a, "/api/v1/asterisk_login/", "")

	phone.stop()
	took := eventually(t, 10*time.Second, "agent unavailable", func() string {
		if s := f.session(t, a); s.Effective() != agent.StateUnavailable {
			return string(s.Effective())
		}
		return ""
	})
	t.Logf("unavailable %s after the phone stopped answering", took.Round(time.Millisecond))
	assert.Equal(t, "UNAVAILABLE", bench.DeviceState(t, "Stasis:agent-"+a.ID))
	assert.Equal(t, agent.StateReady, f.session(t, a).State, "the agent stays logged in")
	assert.NotNil(t, member(t, bench, "sales", a))

	startSIPResponder(t, contact)
	eventually(t, 10*time.Second, "agent ready when the phone answers again", func() string {
		if s := f.session(t, a); s.Effective() != agent.StateReady {
			return string(s.Effective())
		}
		return ""
	})
	assert.Equal(t, "NOT_INUSE", bench.DeviceState(t, "Stasis:agent-"+a.ID))

	var got []string
	for _, ev := range filterEvents(streamEvents(t, js, a.ID), agent.EventAvailabilityChanged, agent.SourceAsterisk) {
		got = append(got, fmt.Sprintf("%s unavailable=%t", ev.EffectiveState, ev.Unavailable))
	}
	assert.Equal(t, []string{"UNAVAILABLE unavailable=true", "READY unavailable=false"}, got)
}

func TestEndpointOfflineLogsOutAfterGrace(t *testing.T) {
	bench := testbench.Require(t)
	contact := softphoneContact(t, bench)
	a := newSoftphoneAgent("sales", "support")
	t.Cleanup(func() { removeMembers(t, bench, a) })
	phone := startSIPResponder(t, contact)
	waitEndpointState(t, bench, "online")
	f := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: t.TempDir(), extra: "reconcile: {unavailable_logout: 2s}\n"})
	js := openJetStream(t, f.natsURL)
	f.mustPost(t, a, "/api/v1/asterisk_login/", "")

	phone.stop()
	eventually(t, 10*time.Second, "agent unavailable", func() string {
		if s := f.session(t, a); s.Effective() != agent.StateUnavailable {
			return string(s.Effective())
		}
		return ""
	})
	unavailableAt := time.Now()
	eventually(t, 10*time.Second, "agent logged out after unavailable_logout", func() string {
		if s := f.session(t, a); s.State != agent.StateOffline {
			return string(s.State)
		}
		return ""
	})
	t.Logf("logged out %s after it was seen unavailable (unavailable_logout 2s)", time.Since(unavailableAt).Round(time.Millisecond))

	assert.Nil(t, member(t, bench, "sales", a))
	assert.Nil(t, member(t, bench, "support", a))
	assert.Equal(t, "UNAVAILABLE", bench.DeviceState(t, "Stasis:agent-"+a.ID))
	logouts := filterEvents(streamEvents(t, js, a.ID), agent.EventLoggedOut, "")
	require.Len(t, logouts, 1)
	assert.Equal(t, agent.SourceTimer, logouts[0].Source)
}

func TestEndpointOfflineWhileStopped(t *testing.T) {
	bench := testbench.Require(t)
	contact := softphoneContact(t, bench)
	a := newSoftphoneAgent("sales")
	t.Cleanup(func() { removeMembers(t, bench, a) })
	phone := startSIPResponder(t, contact)
	waitEndpointState(t, bench, "online")
	dataDir := t.TempDir()
	first := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: dataDir})
	first.mustPost(t, a, "/api/v1/asterisk_login/", "")
	first.stop(t)

	// The endpoint goes offline while agentd is stopped, so agentd never
	// receives that event.
	phone.stop()
	waitEndpointState(t, bench, "offline")
	second := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: dataDir, natsPort: first.natsPort})
	t.Cleanup(func() { second.post(t, a, "/api/v1/asterisk_logout/", nil) })

	eventually(t, 5*time.Second, "agent unavailable after the restart", func() string {
		if s := second.session(t, a); s.Effective() != agent.StateUnavailable {
			return string(s.Effective())
		}
		return ""
	})
	assert.Equal(t, "UNAVAILABLE", bench.DeviceState(t, "Stasis:agent-"+a.ID))
}

func TestEndpointLogoutTimerSurvivesRestart(t *testing.T) {
	bench := testbench.Require(t)
	contact := softphoneContact(t, bench)
	a := newSoftphoneAgent("sales")
	t.Cleanup(func() { removeMembers(t, bench, a) })
	phone := startSIPResponder(t, contact)
	waitEndpointState(t, bench, "online")
	dataDir := t.TempDir()
	const grace = "reconcile: {unavailable_logout: 3s}\n"
	first := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: dataDir, extra: grace})
	first.mustPost(t, a, "/api/v1/asterisk_login/", "")
	phone.stop()
	eventually(t, 10*time.Second, "agent unavailable", func() string {
		if s := first.session(t, a); s.Effective() != agent.StateUnavailable {
			return string(s.Effective())
		}
		return ""
	})
	// Stopped before the grace period ends: the timer dies with agentd.
	first.stop(t)

	second := startFaultDaemon(t, bench, []e2eAgent{a}, faultOptions{dataDir: dataDir, natsPort: first.natsPort, extra: grace})
	js := openJetStream(t, second.natsURL)
	eventually(t, 10*time.Second, "agent logged out by the timer after the restart", func() string {
		if s := second.session(t, a); s.State != agent.StateOffline {
			return string(s.Effective())
		}
		return ""
	})
	assert.Nil(t, member(t, bench, "sales", a))
	logouts := filterEvents(streamEvents(t, js, a.ID), agent.EventLoggedOut, "")
	require.Len(t, logouts, 1)
	assert.Equal(t, agent.SourceTimer, logouts[0].Source)
}
