package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/internal/testbench"
)

// natsServer is a nats-server process with JetStream on 127.0.0.1, built
// from the module's own nats-server dependency.
type natsServer struct {
	binary, storeDir string
	port             int
	cmd              *exec.Cmd
}

func startNATSServer(t *testing.T) *natsServer {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "nats-server")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/nats-io/nats-server/v2").CombinedOutput()
	require.NoError(t, err, "go build nats-server: %s", out)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	s := &natsServer{binary: binary, storeDir: t.TempDir(), port: port}
	s.start(t)
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *natsServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.binary, "-js", "-sd", s.storeDir, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port))
	require.NoError(t, s.cmd.Start())
	require.Eventually(t, func() bool {
		nc, err := nats.Connect(s.url())
		if err != nil {
			return false
		}
		nc.Close()
		return true
	}, 10*time.Second, 20*time.Millisecond, "nats-server did not start")
}

// stop ends the server with SIGTERM, by PID, and waits for it.
func (s *natsServer) stop(t *testing.T) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestExternalNATSOutageLosesNothing runs agentd against a separate
// nats-server that is stopped for several seconds while agents change
// state: requests still succeed, and once NATS is back the stream holds
// every event once, in order per agent, and the bucket matches Asterisk.
func TestExternalNATSOutageLosesNothing(t *testing.T) {
	bench := testbench.Require(t)
	ns := startNATSServer(t)
	agents := []e2eAgent{newAgent("sales"), newAgent("support"), newAgent("billing")}
	dirPath := filepath.Join(t.TempDir(), "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, agents)), 0o600))
	cfg, err := daemon.ParseConfig("agentd.yaml", []byte(fmt.Sprintf(`
node: e2e-external
data_dir: %s
directory: %s
http: {listen: "127.0.0.1:0"}
agi: {listen: ""}
ami: {address: %q, username: %q, password: %q}
ari: {url: %q, username: %q, password: %q, application: %q}
nats: {urls: [%q], stream: AGENT_EVENTS_E2E, bucket: agent_sessions_e2e}
`, t.TempDir(), dirPath, bench.AMIAddr, bench.AMIUser, bench.AMISecret, bench.ARIURL, bench.ARIUser, bench.ARIPassword,
		testbench.UniqueName("agentd-nats"), ns.url())), nil)
	require.NoError(t, err)
	d, err := daemon.Start(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err)
	e := &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()}
	t.Cleanup(func() {
		for _, a := range agents {
			e.post(t, a, "/api/v1/asterisk_logout/", nil)
		}
		e.stop(t)
	})
	e.waitReady(t)

	step := func(a e2eAgent, route, pauseID string) {
		t.Helper()
		var form url.Values
		if pauseID != "" {
			form = url.Values{"pause_id": {pauseID}}
		}
		code, body := e.post(t, a, route, form)
		require.Equal(t, http.StatusOK, code, body)
	}
	for _, a := range agents {
		step(a, "/api/v1/asterisk_login/", "")
	}

	ns.stop(t)
	for i, a := range agents {
		step(a, "/api/v1/asterisk_pause/", "7")
		if i > 0 {
			step(a, "/api/v1/asterisk_unpause/", "7")
		}
	}
	time.Sleep(3 * time.Second) // NATS stays down while agentd retries
	step(agents[2], "/api/v1/asterisk_pause/", "8")
	ns.start(t)

	nc, err := nats.Connect(ns.url())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// want lists each agent's event types in the order of the requests.
	want := map[string][]string{
		agents[0].ID: {"logged_in", "paused"},
		agents[1].ID: {"logged_in", "paused", "unpaused"},
		agents[2].ID: {"logged_in", "paused", "unpaused", "paused"},
	}
	total := 9
	var got map[string][]string
	require.Eventually(t, func() bool {
		got = readStream(t, ctx, js, "AGENT_EVENTS_E2E")
		n := 0
		for _, types := range got {
			n += len(types)
		}
		return n >= total
	}, 20*time.Second, 100*time.Millisecond, "events did not reach NATS after it came back")
	assert.Equal(t, want, got, "every event once, in order per agent")

	kv, err := js.KeyValue(ctx, "agent_sessions_e2e")
	require.NoError(t, err)
	for _, a := range agents {
		entry, err := kv.Get(ctx, a.ID)
		require.NoError(t, err)
		var sess struct {
			State   string `json:"state"`
			PauseID string `json:"pause_id"`
		}
		require.NoError(t, json.Unmarshal(entry.Value(), &sess))
		m := member(t, bench, a.Queues[0], a)
		require.NotNil(t, m)
		assert.Equal(t, sess.State == "PAUSED", m.Paused, "agent %s: bucket and Asterisk agree on the pause", a.ID)
		if m.Paused {
			assert.Equal(t, sess.PauseID, m.PausedReason)
		}
	}
}

// readStream returns the event types of each agent in stream order,
// dropping repeats of an event id.
func readStream(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) map[string][]string {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil
	}
	out := map[string][]string{}
	seen := map[string]bool{}
	pending := int(info.NumPending)
	for pending > 0 {
		batch, err := cons.Fetch(pending, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			var ev struct {
				ID      string `json:"id"`
				Type    string `json:"type"`
				AgentID string `json:"agent_id"`
			}
			require.NoError(t, json.Unmarshal(msg.Data(), &ev))
			validateEvent(t, msg.Data())
			if !seen[ev.ID] {
				seen[ev.ID] = true
				out[ev.AgentID] = append(out[ev.AgentID], ev.Type)
			}
		}
		if n == 0 {
			break
		}
		pending -= n
	}
	return out
}

// validateEvent checks an event published by agentd against the JSON
// Schema in docs/events.schema.json.
func validateEvent(t *testing.T, payload []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile(filepath.Join("..", "docs", "events.schema.json"))
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	require.NoError(t, err)
	assert.NoError(t, schema.Validate(inst), "event %s", payload)
}

// TestReadyzUntilSessionsRestored starts agentd while its external NATS
// server is stopped: /readyz reports the stored sessions as not read,
// and as read once NATS is back.
func TestReadyzUntilSessionsRestored(t *testing.T) {
	ns := startNATSServer(t)
	ns.stop(t)
	closed := closedAddr(t)
	dirPath := filepath.Join(t.TempDir(), "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, nil)), 0o600))
	cfg, err := daemon.ParseConfig("agentd.yaml", []byte(fmt.Sprintf(`
node: e2e-restore
data_dir: %s
directory: %s
http: {listen: "127.0.0.1:0"}
agi: {listen: ""}
ami: {address: %q, username: agentd, password: x}
ari: {url: "http://%s", username: agentd, password: y}
nats: {urls: [%q]}
`, t.TempDir(), dirPath, closed, closed, ns.url())), nil)
	require.NoError(t, err)
	d, err := daemon.Start(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err, "agentd serves while NATS is unreachable")
	e := &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()}
	t.Cleanup(func() { e.stop(t) })

	code, body := getReadyz(t, e)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "down", body["sessions"].Status)
	assert.Contains(t, body["sessions"].LastError, "stored sessions not read yet")
	assert.False(t, body["sessions"].Since.IsZero())

	ns.start(t)
	require.Eventually(t, func() bool {
		_, body = getReadyz(t, e)
		return body["sessions"].Status == "up"
	}, 30*time.Second, 50*time.Millisecond, "sessions restored once NATS is back")
	assert.Empty(t, body["sessions"].LastError)
}
