package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/events"
	"github.com/contactcenter/agentd/internal/testbench"
)

// envDisruptive enables the tests that restart Asterisk or close its AMI
// or HTTP server. Those break every other test that uses the sandbox at
// the same time, so make test runs them alone, after the other tests.
const envDisruptive = "AGENTD_TEST_DISRUPTIVE"

// sandboxScript is the sandbox script, relative to this package.
const sandboxScript = "../scripts/asterisk-sandbox.sh"

// requireDisruptive skips the test unless AGENTD_TEST_DISRUPTIVE=1.
func requireDisruptive(t *testing.T) {
	t.Helper()
	if os.Getenv(envDisruptive) != "1" {
		t.Skipf("restarts Asterisk or closes AMI or HTTP, which breaks tests running at the same time; "+
			"run alone with %s=1 (make test does so after the other tests)", envDisruptive)
	}
}

// sandbox runs a command of the sandbox script, such as reboot or ami-off,
// on the sandbox the bench uses.
func sandbox(bench *testbench.Bench, command string) error {
	cmd := exec.Command(sandboxScript, command)
	cmd.Env = append(os.Environ(), "AGENTD_SANDBOX_ROOT="+bench.SandboxRoot)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", sandboxScript, command, err, out)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the caller listens on it.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// faultDaemon is agentd started in-process against the sandbox Asterisk,
// with its embedded NATS server on a loopback port so the test can read
// the event stream and the session bucket, and with its log kept.
type faultDaemon struct {
	*e2eDaemon
	natsPort int
	natsURL  string
	logs     *logRecorder
}

// faultOptions are the settings of startFaultDaemon. natsPort 0 picks a
// free port, and the port of an earlier start restarts on the same
// data_dir. extra is YAML appended to the configuration.
type faultOptions struct {
	dataDir  string
	natsPort int
	extra    string
}

// startFaultDaemon starts agentd and waits until /readyz reports AMI, ARI
// and NATS up. The reconnect backoff keeps its default (at most 2 s), as
// in production.
func startFaultDaemon(t *testing.T, bench *testbench.Bench, agents []e2eAgent, opts faultOptions) *faultDaemon {
	t.Helper()
	if opts.natsPort == 0 {
		opts.natsPort = freePort(t)
	}
	dirPath := filepath.Join(t.TempDir(), "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, agents)), 0o600))
	cfg := fmt.Sprintf(`
node: faults
data_dir: %s
directory: %s
http: {listen: "127.0.0.1:0"}
agi: {listen: ""}
ami: {address: %q, username: %q, password: %q, action_timeout: 3s}
ari: {url: %q, username: %q, password: %q, application: %q}
nats: {embedded: {listen: "127.0.0.1:%d"}}
`, opts.dataDir, dirPath, bench.AMIAddr, bench.AMIUser, bench.AMISecret,
		bench.ARIURL, bench.ARIUser, bench.ARIPassword, testbench.UniqueName("agentd-faults"), opts.natsPort) + opts.extra
	config, err := daemon.ParseConfig("agentd.yaml", []byte(cfg), nil)
	require.NoError(t, err)

	logs := &logRecorder{}
	logger := slog.New(&recordHandler{rec: logs, next: slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})})
	d, err := daemon.Start(t.Context(), daemon.Options{Config: config, Logger: logger})
	require.NoError(t, err)
	f := &faultDaemon{
		e2eDaemon: &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()},
		natsPort:  opts.natsPort,
		natsURL:   "nats://127.0.0.1:" + strconv.Itoa(opts.natsPort),
		logs:      logs,
	}
	t.Cleanup(func() { f.stop(t) })
	f.waitReady(t)
	return f
}

// session returns the agent's session as the daemon holds it in memory.
func (f *faultDaemon) session(t *testing.T, a e2eAgent) agent.Session {
	t.Helper()
	st, err := f.d.Service().Status(a.ID)
	require.NoError(t, err)
	return st.Session
}

// mustPost sends an API request and requires 200.
func (f *faultDaemon) mustPost(t *testing.T, a e2eAgent, route string, pauseID string) {
	t.Helper()
	var form url.Values
	if pauseID != "" {
		form = url.Values{"pause_id": {pauseID}}
	}
	code, body := f.post(t, a, route, form)
	require.Equal(t, http.StatusOK, code, "%s of agent %s: %v", route, a.ID, body)
}

// logRecord is one log record of the daemon, with every attribute as text.
type logRecord struct {
	Time    time.Time
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// logRecorder keeps every record logged through a recordHandler.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

// find returns the records with message msg whose attributes include
// every key and value of attrs, oldest first.
func (l *logRecorder) find(msg string, attrs map[string]string) []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logRecord
	for _, r := range l.records {
		if r.Message == msg && matchAttrs(r.Attrs, attrs) {
			out = append(out, r)
		}
	}
	return out
}

func matchAttrs(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// recordHandler records every record, debug included, and passes it on to
// next, which writes to the test log.
type recordHandler struct {
	rec   *logRecorder
	attrs []slog.Attr
	next  slog.Handler
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(ctx context.Context, r slog.Record) error {
	rec := logRecord{Time: r.Time, Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.rec.mu.Lock()
	h.rec.records = append(h.rec.records, rec)
	h.rec.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *recordHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recordHandler{rec: h.rec, attrs: append(slices.Clone(h.attrs), attrs...), next: h.next.WithAttrs(attrs)}
}

// WithGroup keeps the attributes of the group unqualified: agentd logs no
// groups.
func (h *recordHandler) WithGroup(name string) slog.Handler {
	return &recordHandler{rec: h.rec, attrs: h.attrs, next: h.next.WithGroup(name)}
}

// openJetStream connects to the NATS server at url for the rest of the test.
func openJetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("agentd-faults-test"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// streamEvents returns the agent's events stored in the event stream,
// oldest first.
func streamEvents(t *testing.T, js jetstream.JetStream, agentID string) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, events.DefaultStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)

	prefix := events.DefaultSubjectPrefix + "." + agentID + "."
	var out []events.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		if !strings.HasPrefix(msg.Subject, prefix) {
			continue
		}
		var ev events.Event
		require.NoError(t, json.Unmarshal(msg.Data, &ev), string(msg.Data))
		out = append(out, ev)
	}
	return out
}

// filterEvents returns the events of type typ (any type when empty) from
// source src (any source when empty).
func filterEvents(evs []events.Event, typ agent.EventType, src agent.Source) []events.Event {
	var out []events.Event
	for _, ev := range evs {
		if (typ == "" || ev.Type == typ) && (src == "" || ev.Source == src) {
			out = append(out, ev)
		}
	}
	return out
}

// bucketSession returns the agent's session stored in the session bucket.
func bucketSession(t *testing.T, js jetstream.JetStream, agentID string) (agent.Session, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.DefaultBucket)
	require.NoError(t, err)
	entry, err := kv.Get(ctx, agentID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return agent.Session{}, false
	}
	require.NoError(t, err)
	var s agent.Session
	require.NoError(t, json.Unmarshal(entry.Value(), &s), string(entry.Value()))
	return s, true
}

// asteriskMismatch compares Asterisk's members of the agent with its
// session. A logged-in agent is a member of each of its queues, paused with
// the pause id as reason when the session is paused, and a logged-out
// agent is in none. It returns "" when they agree, else the first
// difference.
func asteriskMismatch(t *testing.T, bench *testbench.Bench, a e2eAgent, s agent.Session) string {
	t.Helper()
	for _, q := range a.Queues {
		m := member(t, bench, q, a)
		switch {
		case !s.LoggedIn() && m != nil:
			return fmt.Sprintf("agent %s is %s but a member of %s", a.ID, s.State, q)
		case !s.LoggedIn():
		case m == nil:
			return fmt.Sprintf("agent %s is %s but not a member of %s", a.ID, s.State, q)
		case m.Paused != s.Paused():
			return fmt.Sprintf("agent %s is %s but its member of %s has paused=%t", a.ID, s.State, q, m.Paused)
		case s.Paused() && m.PausedReason != s.PauseID:
			return fmt.Sprintf("agent %s is in pause %q but its member of %s has reason %q", a.ID, s.PauseID, q, m.PausedReason)
		}
	}
	return ""
}

// eventually waits up to waitFor for check to return "", polling every
// 25 ms, and returns how long that took. On timeout it fails the test with
// msg and the last value check returned. check runs on another goroutine.
func eventually(t *testing.T, waitFor time.Duration, msg string, check func() string) time.Duration {
	t.Helper()
	var (
		mu   sync.Mutex
		last string
	)
	start := time.Now()
	ok := assert.Eventually(t, func() bool {
		got := check()
		mu.Lock()
		defer mu.Unlock()
		last = got
		return got == ""
	}, waitFor, 25*time.Millisecond, msg)
	if !ok {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: not within %s; last check: %s", msg, waitFor, last)
	}
	return time.Since(start)
}
