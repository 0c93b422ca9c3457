package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/internal/testbench"
)

// e2eAgent is one agent of the directory an end-to-end test writes.
type e2eAgent struct {
	ID        string
	Interface string
	Password  string
	Queues    []string
}

// e2eDaemon is agentd started in-process against the sandbox Asterisk, with
// an embedded NATS server that listens on no socket.
type e2eDaemon struct {
	d    *daemon.Daemon
	base string
}

func startDaemon(t *testing.T, bench *testbench.Bench, dataDir string, agents []e2eAgent) *e2eDaemon {
	t.Helper()
	dir := t.TempDir()
	dirPath := filepath.Join(dir, "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, agents)), 0o600))

	cfg := fmt.Sprintf(`
node: e2e
data_dir: %s
directory: %s
http: {listen: "127.0.0.1:0"}
agi: {listen: "127.0.0.1:0"}
ami: {address: %q, username: %q, password: %q, action_timeout: 3s}
ari: {url: %q, username: %q, password: %q, application: %q}
nats: {embedded: {listen: none}}
`, dataDir, dirPath, bench.AMIAddr, bench.AMIUser, bench.AMISecret, bench.ARIURL, bench.ARIUser, bench.ARIPassword, testbench.UniqueName("agentd-e2e"))
	config, err := daemon.ParseConfig("agentd.yaml", []byte(cfg), nil)
	require.NoError(t, err)

	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := daemon.Start(t.Context(), daemon.Options{Config: config, Logger: logger})
	require.NoError(t, err)
	e := &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()}
	t.Cleanup(func() { e.stop(t) })
	e.waitReady(t)
	return e
}

func (e *e2eDaemon) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assert.NoError(t, e.d.Stop(ctx))
}

func (e *e2eDaemon) waitReady(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(e.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "agentd did not become ready")
}

// post sends an API request with Basic credentials and returns the status
// and the decoded JSON body.
func (e *e2eDaemon) post(t *testing.T, a e2eAgent, route string, form url.Values) (int, map[string]any) {
	t.Helper()
	// Not t.Context(): cleanups log agents out after it is canceled.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+route, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.ID, a.Password)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(body, &out), string(body))
	return resp.StatusCode, out
}

func directoryYAML(t *testing.T, agents []e2eAgent) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("pauses:\n  - {id: \"7\", name: Lunch, type: recreational}\n  - {id: \"8\", name: Training}\nagents:\n")
	for _, a := range agents {
		hash, err := bcrypt.GenerateFromPassword([]byte(a.Password), bcrypt.MinCost)
		require.NoError(t, err)
		fmt.Fprintf(&b, "  - id: %q\n    name: Agent %s\n    interface: %s\n    password_hash: %q\n    queues:\n", a.ID, a.ID, a.Interface, hash)
		for _, q := range a.Queues {
			fmt.Fprintf(&b, "      - {name: %s, penalty: 1}\n", q)
		}
	}
	return b.String()
}

// memberName is the member name of the default template "{id}_{name}".
func (a e2eAgent) memberName() string {
	return a.ID + "_Agent-" + a.ID
}

func newAgent(queues ...string) e2eAgent {
	id := testbench.UniqueName("e2e")
	return e2eAgent{ID: id, Interface: "Local/" + id + "@agent-phones/n", Password: "pw-" + id, Queues: queues}
}

// member returns the agent's member of queue, or nil.
func member(t *testing.T, bench *testbench.Bench, queue string, a e2eAgent) *testbench.QueueMember {
	t.Helper()
	for _, m := range bench.QueueMembers(t, queue) {
		if m.Interface == a.Interface {
			return &m
		}
	}
	return nil
}

// events returns the queue_log events of the agent's member name.
func queueLogEvents(t *testing.T, cursor testbench.QueueLogCursor, a e2eAgent) []string {
	t.Helper()
	var out []string
	for _, l := range cursor.Lines(t) {
		if l.Agent == a.Interface || strings.HasPrefix(l.Agent, a.ID+"_") {
			out = append(out, l.Queue+"|"+l.Event+"|"+strings.Join(l.Data, "|"))
		}
	}
	return out
}

func TestEndpointsOnAsterisk(t *testing.T) {
	bench := testbench.Require(t)
	a := newAgent("sales", "support", "nosuchqueue-e2e")
	e := startDaemon(t, bench, t.TempDir(), []e2eAgent{a})
	device := "Stasis:agent-" + a.ID
	t.Cleanup(func() {
		bench.RemoveMember(t, "sales", a.Interface)
		bench.RemoveMember(t, "support", a.Interface)
	})

	// login
	log := bench.QueueLog(t)
	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "READY", body["state"])
	assert.Equal(t, "no_such_queue", body["warnings"].([]any)[0].(map[string]any)["code"])
	for _, q := range []string{"sales", "support"} {
		m := member(t, bench, q, a)
		require.NotNil(t, m, "member of %s", q)
		assert.False(t, m.Paused)
		assert.Equal(t, 1, m.Penalty)
		assert.Equal(t, a.memberName(), m.MemberName)
	}
	assert.ElementsMatch(t, []string{"sales|ADDMEMBER|", "support|ADDMEMBER|"}, queueLogEvents(t, log, a))
	assert.Equal(t, "NOT_INUSE", bench.DeviceState(t, device))

	// pause with a pause id
	log = bench.QueueLog(t)
	code, body = e.post(t, a, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "PAUSED", body["state"])
	assert.Equal(t, "Lunch", body["pause_name"])
	for _, q := range []string{"sales", "support"} {
		m := member(t, bench, q, a)
		require.NotNil(t, m)
		assert.True(t, m.Paused, q)
		assert.Equal(t, "7", m.PausedReason, q)
	}
	assert.Contains(t, queueLogEvents(t, log, a), "sales|PAUSE|7")
	assert.Contains(t, queueLogEvents(t, log, a), "support|PAUSE|7")
	assert.Equal(t, "ONHOLD", bench.DeviceState(t, device))

	// switch to another pause: the reason follows
	code, body = e.post(t, a, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"8"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "8", member(t, bench, "sales", a).PausedReason)

	// a stale unpause of the first pause changes nothing
	code, body = e.post(t, a, "/api/v1/asterisk_unpause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusConflict, code, body)
	assert.True(t, member(t, bench, "sales", a).Paused)

	// unpause
	log = bench.QueueLog(t)
	code, body = e.post(t, a, "/api/v1/asterisk_unpause/", url.Values{"pause_id": {"8"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "READY", body["state"])
	assert.False(t, member(t, bench, "sales", a).Paused)
	assert.False(t, member(t, bench, "support", a).Paused)
	assert.Contains(t, queueLogEvents(t, log, a), "sales|UNPAUSE|8")
	assert.Equal(t, "NOT_INUSE", bench.DeviceState(t, device))

	// logout
	log = bench.QueueLog(t)
	code, body = e.post(t, a, "/api/v1/asterisk_logout/", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "OFFLINE", body["state"])
	assert.Nil(t, member(t, bench, "sales", a))
	assert.Nil(t, member(t, bench, "support", a))
	assert.ElementsMatch(t, []string{"sales|REMOVEMEMBER|", "support|REMOVEMEMBER|"}, filterEvent(queueLogEvents(t, log, a), "REMOVEMEMBER"))
	assert.Equal(t, "UNAVAILABLE", bench.DeviceState(t, device))
}

func filterEvent(lines []string, event string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, "|"+event+"|") {
			out = append(out, l)
		}
	}
	return out
}

func TestLoginRepairsMissingMember(t *testing.T) {
	bench := testbench.Require(t)
	a := newAgent("sales", "support")
	e := startDaemon(t, bench, t.TempDir(), []e2eAgent{a})
	t.Cleanup(func() { e.post(t, a, "/api/v1/asterisk_logout/", nil) })

	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	code, body = e.post(t, a, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"0"}})
	require.Equal(t, http.StatusOK, code, body)
	bench.RemoveMember(t, "support", a.Interface) // lost outside agentd

	code, body = e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)

	assert.Equal(t, "READY", body["state"])
	require.NotNil(t, member(t, bench, "support", a))
	assert.False(t, member(t, bench, "sales", a).Paused)
}

func TestQueueCallFollowsPause(t *testing.T) {
	bench := testbench.Require(t)
	const queue = "e2e-calls"
	a := newAgent(queue)
	e := startDaemon(t, bench, t.TempDir(), []e2eAgent{a})
	t.Cleanup(func() { e.post(t, a, "/api/v1/asterisk_logout/", nil) })
	events := bench.ListenEvents(t)
	memberName := a.memberName()

	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)

	// A ready agent gets the call.
	first := placeQueueCall(t, bench, queue)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	isJoin := func(ev map[string]string) bool { return ev["Event"] == "QueueCallerJoin" && ev["Queue"] == queue }
	events.WaitEvent(t, ctx, isJoin)
	events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "AgentConnect" && ev["Queue"] == queue && ev["MemberName"] == memberName
	})
	bench.Hangup(t, first)

	// A paused agent does not.
	code, body = e.post(t, a, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusOK, code, body)
	second := placeQueueCall(t, bench, queue)
	defer bench.Hangup(t, second)
	join := events.WaitEvent(t, ctx, isJoin)
	time.Sleep(3 * time.Second) // several ring rounds (queue retry is 1 s)
	for _, ev := range events.Events() {
		if ev["Event"] == "AgentCalled" && ev["Linkedid"] == join["Linkedid"] {
			t.Fatalf("paused agent was called: %v", ev)
		}
	}

	// After unpause, the waiting caller reaches the agent.
	code, body = e.post(t, a, "/api/v1/asterisk_unpause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusOK, code, body)
	events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["Event"] == "AgentConnect" && ev["Queue"] == queue && ev["MemberName"] == memberName
	})
}

// placeQueueCall starts a caller into queue and returns a Hangup pattern
// that matches its channels.
func placeQueueCall(t *testing.T, bench *testbench.Bench, queue string) string {
	t.Helper()
	bench.Originate(t, testbench.OriginateRequest{Channel: "Local/" + queue + "@queue-callers/n", Application: "Wait", Data: "30", Async: true})
	return "/^Local\\/" + queue + "@queue-callers-/"
}

// testWriter sends daemon logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRemovedMemberIsRestored(t *testing.T) {
	bench := testbench.Require(t)
	a := newAgent("support", "billing")
	e := startDaemon(t, bench, t.TempDir(), []e2eAgent{a})
	t.Cleanup(func() { e.post(t, a, "/api/v1/asterisk_logout/", nil) })
	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	code, body = e.post(t, a, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusOK, code, body)

	bench.CLI(t, "queue remove member "+a.Interface+" from support")

	require.Eventually(t, func() bool { return member(t, bench, "support", a) != nil }, 5*time.Second, 50*time.Millisecond,
		"the default member policy restores the member")
	m := member(t, bench, "support", a)
	assert.True(t, m.Paused)
	assert.Equal(t, "7", m.PausedReason)
}

func TestAsteriskErrorAnswers502(t *testing.T) {
	a := newAgent("sales")
	amiAddr := fakeAMI(t, "Unable to add interface to queue: Out of memory")
	dirPath := filepath.Join(t.TempDir(), "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, []e2eAgent{a})), 0o600))
	cfg, err := daemon.ParseConfig("agentd.yaml", []byte(fmt.Sprintf(`
node: e2e
data_dir: %s
directory: %s
http: {listen: "127.0.0.1:0"}
agi: {listen: ""}
ami: {address: %q, username: agentd, password: x}
ari: {url: "http://%s", username: agentd, password: y}
nats: {embedded: {listen: none}}
`, t.TempDir(), dirPath, amiAddr, closedAddr(t))), nil)
	require.NoError(t, err)
	d, err := daemon.Start(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err)
	e := &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()}
	t.Cleanup(func() { e.stop(t) })
	require.Eventually(t, func() bool {
		code, _ := e.post(t, a, "/api/v1/asterisk_login/", nil)
		return code != http.StatusServiceUnavailable
	}, 5*time.Second, 20*time.Millisecond, "AMI did not connect")

	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)

	assert.Equal(t, http.StatusBadGateway, code, body)
	assert.Equal(t, "asterisk_error", body["error"].(map[string]any)["code"])
	st, err := d.Service().Status(a.ID)
	require.NoError(t, err)
	assert.Equal(t, "OFFLINE", string(st.Session.State), "nothing is stored that Asterisk did not apply")
}

// fakeAMI serves AMI on 127.0.0.1: it accepts any login, answers Ping, and
// answers every other action with an error carrying message.
func fakeAMI(t *testing.T, message string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveFakeAMI(conn, message)
		}
	}()
	return ln.Addr().String()
}

func serveFakeAMI(conn net.Conn, message string) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, "Asterisk Call Manager/11.0.0\r\n")
	for {
		fields, err := readAMIFrame(r)
		if err != nil {
			return
		}
		id := fields["actionid"]
		switch strings.ToLower(fields["action"]) {
		case "login", "ping", "logoff":
			fmt.Fprintf(conn, "Response: Success\r\nActionID: %s\r\nMessage: ok\r\n\r\n", id)
		default:
			fmt.Fprintf(conn, "Response: Error\r\nActionID: %s\r\nMessage: %s\r\n\r\n", id, message)
		}
	}
}

// readAMIFrame reads one AMI message up to its blank line and returns its
// fields with lower-case keys, for the fake AMI servers of these tests.
func readAMIFrame(r *bufio.Reader) (map[string]string, error) {
	fields := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return fields, nil
		}
		k, v, _ := strings.Cut(line, ":")
		fields[strings.ToLower(k)] = strings.TrimSpace(v)
	}
}

// startOffline starts agentd with Asterisk unreachable. extra is appended
// to the configuration.
func startOffline(t *testing.T, agents []e2eAgent, extra string) *e2eDaemon {
	t.Helper()
	closed := closedAddr(t)
	dirPath := filepath.Join(t.TempDir(), "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, agents)), 0o600))
	cfg, err := daemon.ParseConfig("agentd.yaml", []byte(fmt.Sprintf(`
node: e2e
data_dir: %s
directory: %s
agi: {listen: ""}
ami: {address: %q, username: agentd, password: x}
ari: {url: "http://%s", username: agentd, password: y}
nats: {embedded: {listen: none}}
`, t.TempDir(), dirPath, closed, closed)+extra), nil)
	require.NoError(t, err)
	d, err := daemon.Start(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err)
	e := &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()}
	t.Cleanup(func() { e.stop(t) })
	return e
}

func TestAsteriskDownAnswers503(t *testing.T) {
	a := newAgent("sales")
	e := startOffline(t, []e2eAgent{a}, `http: {listen: "127.0.0.1:0"}`)

	resp, err := http.Get(e.base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)

	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Equal(t, "asterisk_unavailable", body["error"].(map[string]any)["code"])
	st, err := e.d.Service().Status(a.ID)
	require.NoError(t, err)
	assert.Equal(t, "OFFLINE", string(st.Session.State))
}

func TestCORSPreflightForAllowedOrigin(t *testing.T) {
	e := startOffline(t, nil, `http: {listen: "127.0.0.1:0", cors: {allowed_origins: ["https://phone.example.com"]}}`)
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, e.base+"/api/v1/asterisk_pause/", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}

	allowed := preflight("https://phone.example.com")
	assert.Equal(t, http.StatusNoContent, allowed.StatusCode)
	assert.Equal(t, "https://phone.example.com", allowed.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", allowed.Header.Get("Access-Control-Allow-Credentials"))

	other := preflight("https://evil.example.com")
	assert.Empty(t, other.Header.Get("Access-Control-Allow-Origin"))

	// A cross-site POST is rejected unless its origin is allowed.
	post := func(origin string) int {
		req, err := http.NewRequest(http.MethodPost, e.base+"/api/v1/asterisk_login/", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.SetBasicAuth("nobody", "x")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, post("https://phone.example.com"), "allowed origin reaches authentication")
	assert.Equal(t, http.StatusForbidden, post("https://evil.example.com"))
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
