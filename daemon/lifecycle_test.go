package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/internal/testbench"
)

// queueAMI serves AMI on 127.0.0.1. It accepts any login and responds to
// every action with Success. With hold set, it keeps each QueueAdd response
// until releaseHeld, so a request stays in flight as long as a test needs.
type queueAMI struct {
	ln        net.Listener
	hold      bool
	queueAdds chan string // the Interface of each QueueAdd, in arrival order

	release   chan struct{}
	releaseMu sync.Once
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	actions []string
}

func startQueueAMI(t *testing.T, hold bool) *queueAMI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &queueAMI{
		ln:        ln,
		hold:      hold,
		queueAdds: make(chan string, 100),
		release:   make(chan struct{}),
		closed:    make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
	}
	f.wg.Go(f.accept)
	t.Cleanup(f.close)
	return f
}

func (f *queueAMI) addr() string { return f.ln.Addr().String() }

// releaseHeld sends the held QueueAdd responses and stops holding new ones.
func (f *queueAMI) releaseHeld() { f.releaseMu.Do(func() { close(f.release) }) }

// close stops the server, closes its connections and waits for its
// goroutines.
func (f *queueAMI) close() {
	f.closeOnce.Do(func() {
		close(f.closed)
		_ = f.ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			_ = c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
}

// actionCount returns how many actions other than Login, Ping and Logoff
// were received.
func (f *queueAMI) actionCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.actions)
}

func (f *queueAMI) accept() {
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[conn] = struct{}{}
		f.mu.Unlock()
		f.wg.Go(func() { f.serve(conn) })
	}
}

func (f *queueAMI) serve(conn net.Conn) {
	defer conn.Close()
	var writeMu sync.Mutex
	send := func(format string, args ...any) {
		writeMu.Lock()
		defer writeMu.Unlock()
		fmt.Fprintf(conn, format, args...)
	}
	send("Asterisk Call Manager/11.0.0\r\n")
	r := bufio.NewReader(conn)
	for {
		fields, err := readAMIFrame(r)
		if err != nil {
			return
		}
		action, id := strings.ToLower(fields["action"]), fields["actionid"]
		if action != "login" && action != "ping" && action != "logoff" {
			f.mu.Lock()
			f.actions = append(f.actions, action)
			f.mu.Unlock()
		}
		if action == "queueadd" {
			f.queueAdds <- fields["interface"]
		}
		if action == "queueadd" && f.hold {
			f.wg.Go(func() {
				select {
				case <-f.release:
					send("Response: Success\r\nActionID: %s\r\nMessage: Added interface to queue\r\n\r\n", id)
				case <-f.closed:
				}
			})
			continue
		}
		send("Response: Success\r\nActionID: %s\r\nMessage: ok\r\n\r\n", id)
	}
}

// startDeviceStateARI serves the ARI device state requests on 127.0.0.1
// with 204 and everything else, the event websocket included, with 404.
func startDeviceStateARI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/ari/deviceStates/") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lifecycleSetup is the configuration of a daemon started from files, as
// main starts it, so that Reload can read them again.
type lifecycleSetup struct {
	amiAddr string
	ariURL  string
	agi     bool
	level   string
	agents  []e2eAgent
	// stopFails is set by a test whose own Stop fails on purpose, so the
	// cleanup does not check the repeated result.
	stopFails bool

	configPath    string
	directoryPath string
	logs          *syncBuffer
	levelVar      *slog.LevelVar
}

// write writes the configuration and the directory into dir.
func (s *lifecycleSetup) write(t *testing.T, dir string) {
	t.Helper()
	s.directoryPath = filepath.Join(dir, "directory.yaml")
	s.configPath = filepath.Join(dir, "agentd.yaml")
	require.NoError(t, os.WriteFile(s.directoryPath, []byte(directoryYAML(t, s.agents)), 0o600))
	s.writeConfig(t, s.level)
}

func (s *lifecycleSetup) writeConfig(t *testing.T, level string) {
	t.Helper()
	agiListen := ""
	if s.agi {
		agiListen = "127.0.0.1:0"
	}
	cfg := fmt.Sprintf(`
node: lifecycle
data_dir: %s
directory: %s
log: {level: %s}
http: {listen: "127.0.0.1:0"}
agi: {listen: %q}
ami: {address: %q, username: agentd, password: x, action_timeout: 30s}
ari: {url: %q, username: agentd, password: y}
nats: {embedded: {listen: none}}
`, filepath.Join(filepath.Dir(s.configPath), "data"), s.directoryPath, level, agiListen, s.amiAddr, s.ariURL)
	require.NoError(t, os.WriteFile(s.configPath, []byte(cfg), 0o600))
}

// options loads the configuration and builds the logger as main does.
func (s *lifecycleSetup) options(t *testing.T) daemon.Options {
	t.Helper()
	cfg, err := daemon.LoadConfig(s.configPath, nil)
	require.NoError(t, err)
	s.logs = &syncBuffer{}
	logger, level := daemon.NewLogger(s.logs, cfg.Log)
	s.levelVar = level
	return daemon.Options{ConfigPath: s.configPath, Config: cfg, Logger: logger, Level: level}
}

// startLifecycle starts agentd from the files of s and waits until AMI
// is connected.
func startLifecycle(t *testing.T, s *lifecycleSetup) *e2eDaemon {
	t.Helper()
	if s.level == "" {
		s.level = "info"
	}
	s.write(t, t.TempDir())
	d, err := daemon.Start(t.Context(), s.options(t))
	require.NoError(t, err)
	e := &e2eDaemon{d: d, base: "http://" + d.HTTPAddr().String()}
	t.Cleanup(func() {
		if s.stopFails {
			_ = d.Stop(context.Background())
		} else {
			e.stop(t)
		}
		if t.Failed() {
			t.Log(s.logs.String())
		}
	})
	require.Eventually(t, func() bool { return readiness(t, e)["ami"].Status == "up" }, 10*time.Second, 10*time.Millisecond,
		"AMI did not connect to the fake server")
	return e
}

type readyEntry struct {
	Status    string    `json:"status"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error"`
}

// readiness returns the /readyz body.
func readiness(t *testing.T, e *e2eDaemon) map[string]readyEntry {
	t.Helper()
	code, body := getReadyz(t, e)
	require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, code)
	return body
}

func getReadyz(t *testing.T, e *e2eDaemon) (int, map[string]readyEntry) {
	t.Helper()
	resp, err := http.Get(e.base + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]readyEntry
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// apiResult is the outcome of a request sent from a goroutine other than
// the test's.
type apiResult struct {
	code int
	body map[string]any
	err  error
}

// postFrom sends an API request without failing the test, for use from
// other goroutines. Each request uses a new connection.
func postFrom(base string, a e2eAgent, route string, form url.Values) apiResult {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequest(http.MethodPost, base+route, strings.NewReader(form.Encode()))
	if err != nil {
		return apiResult{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.ID, a.Password)
	resp, err := client.Do(req)
	if err != nil {
		return apiResult{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResult{code: resp.StatusCode, err: err}
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		return apiResult{code: resp.StatusCode, err: fmt.Errorf("body %q: %w", data, err)}
	}
	return apiResult{code: resp.StatusCode, body: body}
}

// refused reports whether a new TCP connection to addr is refused.
func refused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// waitQueueAdds waits for n QueueAdd actions to reach the fake AMI.
func waitQueueAdds(t *testing.T, ami *queueAMI, n int) {
	t.Helper()
	for range n {
		select {
		case <-ami.queueAdds:
		case <-time.After(10 * time.Second):
			t.Fatalf("fewer than %d QueueAdd actions reached the fake AMI", n)
		}
	}
}

// stopAsync calls Stop in a new goroutine and returns its result channel.
func stopAsync(d *daemon.Daemon, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- d.Stop(ctx)
	}()
	return done
}

// waitStop returns the result of Stop, failing the test if Stop hangs.
func waitStop(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return")
		return nil
	}
}

func TestStopFinishesRequestsInFlight(t *testing.T) {
	ami := startQueueAMI(t, true)
	agents := []e2eAgent{newAgent("sales"), newAgent("sales"), newAgent("support")}
	e := startLifecycle(t, &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agi: true, agents: agents})
	httpAddr, agiAddr := e.d.HTTPAddr().String(), e.d.AGIAddr().String()
	results := make(chan apiResult, len(agents))
	for _, a := range agents {
		go func() { results <- postFrom(e.base, a, "/api/v1/asterisk_login/", nil) }()
	}
	waitQueueAdds(t, ami, len(agents))

	stopped := stopAsync(e.d, 10*time.Second)

	require.Eventually(t, func() bool { return refused(httpAddr) }, 10*time.Second, 5*time.Millisecond,
		"the HTTP listener still accepts connections after Stop began")
	require.Eventually(t, func() bool { return refused(agiAddr) }, 10*time.Second, 5*time.Millisecond,
		"the FastAGI listener still accepts connections while HTTP requests drain")
	assert.Empty(t, results, "a request finished before Asterisk answered")
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned with requests in flight: %v", err)
	default:
	}
	ami.releaseHeld()
	for range agents {
		r := <-results
		require.NoError(t, r.err, "the request in flight must get its response, not a reset")
		assert.Equal(t, http.StatusOK, r.code, r.body)
		assert.Equal(t, "READY", r.body["state"])
	}
	require.NoError(t, waitStop(t, stopped))
	assert.NoError(t, e.d.Stop(context.Background()), "a second Stop is harmless")
}

// agiCall speaks Asterisk's side of one FastAGI session.
type agiCall struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialAGIScript connects to agentd's FastAGI server and sends the header
// that Asterisk 22 sends for AGI(agi://127.0.0.1/<script>,<args>).
func dialAGIScript(t *testing.T, addr, script string, args ...string) *agiCall {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	var b strings.Builder
	fmt.Fprintf(&b, "agi_network: yes\nagi_network_script: %s\nagi_request: agi://127.0.0.1/%s\n", script, script)
	b.WriteString("agi_channel: Local/agi@agent-phones-00000018;1\nagi_language: en\nagi_type: Local\n")
	b.WriteString("agi_uniqueid: 1796415647.48\nagi_version: 22.10.1\nagi_context: agentd-agi\nagi_extension: s\nagi_priority: 1\n")
	for i, a := range args {
		fmt.Fprintf(&b, "agi_arg_%d: %s\n", i+1, a)
	}
	b.WriteString("\n")
	_, err = io.WriteString(conn, b.String())
	require.NoError(t, err)
	return &agiCall{conn: conn, r: bufio.NewReader(conn)}
}

// variables responds to each SET VARIABLE and EXEC MSet with success, as
// Asterisk does, until agentd closes the session, and returns the
// variables set. The values used here have no quotes or commas.
func (c *agiCall) variables() (map[string]string, error) {
	vars := map[string]string{}
	for {
		line, err := c.r.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			return vars, nil
		}
		if err != nil {
			return vars, err
		}
		line = strings.TrimSuffix(line, "\n")
		resp := "200 result=1\n"
		if rest, ok := strings.CutPrefix(line, "SET VARIABLE "); ok {
			name, value, _ := strings.Cut(rest, " ")
			vars[strings.Trim(name, `"`)] = strings.Trim(value, `"`)
		} else if rest, ok := strings.CutPrefix(line, `EXEC "MSet" `); ok {
			for pair := range strings.SplitSeq(strings.Trim(rest, `"`), ",") {
				name, value, _ := strings.Cut(pair, "=")
				vars[name] = value
			}
			resp = "200 result=0\n"
		} else {
			return vars, fmt.Errorf("unexpected command %q", line)
		}
		if _, err := io.WriteString(c.conn, resp); err != nil {
			return vars, err
		}
	}
}

func TestStopWaitsForAGISession(t *testing.T) {
	ami := startQueueAMI(t, true)
	a := newAgent("sales")
	e := startLifecycle(t, &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agi: true, agents: []e2eAgent{a}})
	agiAddr := e.d.AGIAddr().String()
	call := dialAGIScript(t, agiAddr, "agent_login", a.ID)
	waitQueueAdds(t, ami, 1)

	stopped := stopAsync(e.d, 10*time.Second)

	require.Eventually(t, func() bool { return refused(agiAddr) }, 10*time.Second, 5*time.Millisecond,
		"the FastAGI listener still accepts connections after Stop began")
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned with a FastAGI session in flight: %v", err)
	default:
	}
	ami.releaseHeld()
	vars, err := call.variables()
	require.NoError(t, err)
	assert.Equal(t, "OK", vars["AGENT_RESULT"], vars)
	assert.Equal(t, "READY", vars["AGENT_STATE"], vars)
	require.NoError(t, waitStop(t, stopped))
}

func TestStopDeadlineWithStuckRequest(t *testing.T) {
	ami := startQueueAMI(t, true) // never released: the QueueAdd is stuck
	a := newAgent("sales")
	e := startLifecycle(t, &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agents: []e2eAgent{a}, stopFails: true})
	result := make(chan apiResult, 1)
	go func() { result <- postFrom(e.base, a, "/api/v1/asterisk_login/", nil) }()
	waitQueueAdds(t, ami, 1)

	stopErr := waitStop(t, stopAsync(e.d, 200*time.Millisecond))

	require.ErrorIs(t, stopErr, context.DeadlineExceeded)
	r := <-result
	require.NoError(t, r.err, "the stuck request gets a response when Stop ends it")
	assert.GreaterOrEqual(t, r.code, http.StatusInternalServerError, r.body)
	st, err := e.d.Service().Status(a.ID)
	require.NoError(t, err)
	assert.Equal(t, "OFFLINE", string(st.Session.State), "an interrupted login stores nothing")
	assert.Equal(t, stopErr, e.d.Stop(context.Background()), "a second Stop returns the first result")
}

func TestStopLeavesNoGoroutines(t *testing.T) {
	// Goroutines of earlier tests, such as idle keep-alive connections of
	// http.DefaultClient, are not this test's.
	baseline := goleak.IgnoreCurrent()
	ami := startQueueAMI(t, false)
	ari := startDeviceStateARI(t)
	a := newAgent("sales")
	e := startLifecycle(t, &lifecycleSetup{amiAddr: ami.addr(), ariURL: ari.URL, agi: true, agents: []e2eAgent{a}})
	r := postFrom(e.base, a, "/api/v1/asterisk_login/", nil)
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.code, r.body)
	vars, err := dialAGIScript(t, e.d.AGIAddr().String(), "agent_state", a.ID).variables()
	require.NoError(t, err)
	require.Equal(t, "READY", vars["AGENT_STATE"])
	readiness(t, e)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.d.Stop(ctx))
	ami.close()
	ari.Close()
	http.DefaultClient.CloseIdleConnections()

	goleak.VerifyNone(t, baseline)
}

func TestReloadAddsAgentAndKeepsSessions(t *testing.T) {
	ami := startQueueAMI(t, false)
	ana := newAgent("sales")
	setup := &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agents: []e2eAgent{ana}}
	e := startLifecycle(t, setup)
	code, body := e.post(t, ana, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	code, body = e.post(t, ana, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "Lunch", body["pause_name"])
	before, err := e.d.Service().Status(ana.ID)
	require.NoError(t, err)
	actions := ami.actionCount()

	bruno := newAgent("support")
	renamed := strings.Replace(directoryYAML(t, []e2eAgent{ana, bruno}), "name: Lunch", "name: Almuerzo", 1)
	require.NoError(t, os.WriteFile(setup.directoryPath, []byte(renamed), 0o600))
	require.NoError(t, e.d.Reload())

	after, err := e.d.Service().Status(ana.ID)
	require.NoError(t, err)
	assert.Equal(t, before.Session, after.Session, "the session of an agent already logged in is untouched")
	assert.Equal(t, actions, ami.actionCount(), "a reload sends nothing to Asterisk")
	require.NotNil(t, after.Pause)
	assert.Equal(t, "Almuerzo", after.Pause.Name, "the renamed pause is in force")
	code, body = e.post(t, bruno, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "READY", body["state"])
	code, body = e.post(t, ana, "/api/v1/asterisk_pause/", url.Values{"pause_id": {"7"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "Almuerzo", body["pause_name"])
	assert.Contains(t, setup.logs.String(), "msg=reloaded")
}

func TestReloadRejectsInvalidDirectory(t *testing.T) {
	ami := startQueueAMI(t, false)
	ana := newAgent("sales")
	setup := &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agents: []e2eAgent{ana}}
	e := startLifecycle(t, setup)
	bruno := newAgent("support")
	invalid := directoryYAML(t, []e2eAgent{ana, bruno}) + "  - id: \"bad id\"\n    name: Broken\n    interface: PJSIP/9\n"
	require.NoError(t, os.WriteFile(setup.directoryPath, []byte(invalid), 0o600))
	before, _, found := strings.Cut(invalid, `- id: "bad id"`)
	require.True(t, found)
	line := strings.Count(before, "\n") + 1

	err := e.d.Reload()

	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("%s:%d:", setup.directoryPath, line))
	assert.Contains(t, err.Error(), `agent id "bad id" is invalid`)
	code, body := e.post(t, bruno, "/api/v1/asterisk_login/", nil)
	assert.Equal(t, http.StatusUnauthorized, code, "an agent of the rejected file is unknown: %v", body)
	code, body = e.post(t, ana, "/api/v1/asterisk_login/", nil)
	assert.Equal(t, http.StatusOK, code, "the directory in force stays: %v", body)
}

func TestReloadRejectsInvalidConfig(t *testing.T) {
	ami := startQueueAMI(t, false)
	ana := newAgent("sales")
	setup := &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agents: []e2eAgent{ana}}
	e := startLifecycle(t, setup)
	bruno := newAgent("support")
	require.NoError(t, os.WriteFile(setup.directoryPath, []byte(directoryYAML(t, []e2eAgent{ana, bruno})), 0o600))
	setup.writeConfig(t, "loud")

	err := e.d.Reload()

	require.Error(t, err)
	assert.Contains(t, err.Error(), setup.configPath+":5: log.level \"loud\" is invalid")
	code, body := e.post(t, bruno, "/api/v1/asterisk_login/", nil)
	assert.Equal(t, http.StatusUnauthorized, code, "the directory is not reloaded with an invalid configuration: %v", body)
	assert.Equal(t, slog.LevelInfo, setup.levelVar.Level())
}

func TestReloadChangesLogLevel(t *testing.T) {
	ami := startQueueAMI(t, false)
	setup := &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL}
	e := startLifecycle(t, setup)
	healthz := func() {
		resp, err := http.Get(e.base + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
	}
	healthz()
	require.NotContains(t, setup.logs.String(), "route=/healthz", "requests to /healthz log at Debug")

	setup.writeConfig(t, "debug")
	require.NoError(t, e.d.Reload())
	healthz()

	assert.Equal(t, slog.LevelDebug, setup.levelVar.Level())
	assert.Contains(t, setup.logs.String(), "route=/healthz")

	setup.writeConfig(t, "warn")
	require.NoError(t, e.d.Reload())

	assert.Equal(t, slog.LevelWarn, setup.levelVar.Level())
}

// startedAddr matches the HTTP address in the "agentd started" log line.
var startedAddr = regexp.MustCompile(`msg="agentd started".* http=(\S+)`)

func TestRunReloadsOnSignalAndStopsOnCancel(t *testing.T) {
	ami := startQueueAMI(t, false)
	ana := newAgent("sales")
	setup := &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agents: []e2eAgent{ana}, level: "info"}
	setup.write(t, t.TempDir())
	opts := setup.options(t)
	reload := make(chan os.Signal, 1)
	opts.Reload = reload
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	returned := make(chan error, 1)

	go func() { returned <- daemon.Run(ctx, opts) }()

	var base string
	require.Eventually(t, func() bool {
		m := startedAddr.FindStringSubmatch(setup.logs.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "agentd did not start")
	e := &e2eDaemon{base: base}
	bruno := newAgent("support")
	require.NoError(t, os.WriteFile(setup.directoryPath, []byte(directoryYAML(t, []e2eAgent{ana, bruno})), 0o600))
	reload <- syscall.SIGHUP
	require.Eventually(t, func() bool { return strings.Contains(setup.logs.String(), "msg=reloaded") }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return readinessAt(t, base)["ami"].Status == "up" }, 10*time.Second, 10*time.Millisecond)
	code, body := e.post(t, bruno, "/api/v1/asterisk_login/", nil)
	assert.Equal(t, http.StatusOK, code, "the agent added by the reload logs in: %v", body)

	require.NoError(t, os.WriteFile(setup.directoryPath, []byte("agents: [{id: \"x\"}]\n"), 0o600))
	reload <- syscall.SIGHUP
	require.Eventually(t, func() bool { return strings.Contains(setup.logs.String(), "reload failed") }, 10*time.Second, 10*time.Millisecond)
	code, body = e.post(t, bruno, "/api/v1/asterisk_logout/", nil)
	assert.Equal(t, http.StatusOK, code, "a failed reload keeps the directory in force: %v", body)

	cancel()

	select {
	case err := <-returned:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
	assert.True(t, refused(strings.TrimPrefix(base, "http://")), "agentd still listens after Run returned")
	assert.Contains(t, setup.logs.String(), `msg="agentd stopped"`)
}

func readinessAt(t *testing.T, base string) map[string]readyEntry {
	t.Helper()
	return readiness(t, &e2eDaemon{base: base})
}

func TestReadyzWhileAsteriskIsDown(t *testing.T) {
	e := startOffline(t, nil, `http: {listen: "127.0.0.1:0"}`)

	var code int
	var body map[string]readyEntry
	require.Eventually(t, func() bool {
		code, body = getReadyz(t, e)
		return body["ami"].LastError != "" && body["ari"].LastError != ""
	}, 10*time.Second, 10*time.Millisecond, "no connection attempt failed yet")

	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "down", body["ami"].Status)
	assert.Contains(t, body["ami"].LastError, "connection refused")
	assert.Equal(t, "down", body["ari"].Status)
	assert.Contains(t, body["ari"].LastError, "connection refused")
	assert.Equal(t, "up", body["nats"].Status)
	assert.Empty(t, body["nats"].LastError)
	assert.Equal(t, "up", body["sessions"].Status)
	assert.Len(t, body, 4)
}

func TestReadyzOnAsterisk(t *testing.T) {
	bench := testbench.Require(t)
	e := startDaemon(t, bench, t.TempDir(), nil)

	code, body := getReadyz(t, e)

	assert.Equal(t, http.StatusOK, code)
	for _, name := range []string{"ami", "ari", "nats", "sessions"} {
		assert.Equal(t, "up", body[name].Status, name)
		assert.False(t, body[name].Since.IsZero(), "%s has no since", name)
		assert.Empty(t, body[name].LastError, name)
	}
	assert.Len(t, body, 4)
}
