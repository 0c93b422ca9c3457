package daemon_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/testbench"
)

// The tests below run agentd as a child process, built from cmd/agentd,
// and end it with SIGKILL: no deferred function, no shutdown, no flush.

// buildAgentd builds cmd/agentd into a temporary directory.
func buildAgentd(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "agentd")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/agentd").CombinedOutput()
	require.NoError(t, err, "go build ./cmd/agentd: %s", out)
	return binary
}

// childSetup is the configuration of an agentd child process. Every start
// uses the same data_dir and ports, as a restart by systemd would.
type childSetup struct {
	binary     string
	configPath string
	logPath    string
	base       string // HTTP API
	natsURL    string
}

func newChildSetup(t *testing.T, bench *testbench.Bench, agents []e2eAgent) childSetup {
	t.Helper()
	dir := t.TempDir()
	httpPort, natsPort := freePort(t), freePort(t)
	dirPath := filepath.Join(dir, "directory.yaml")
	require.NoError(t, os.WriteFile(dirPath, []byte(directoryYAML(t, agents)), 0o600))
	cfg := fmt.Sprintf(`
node: crash
data_dir: %s
directory: %s
log: {level: debug}
http: {listen: "127.0.0.1:%d"}
agi: {listen: ""}
ami: {address: %q, username: %q, password: %q, action_timeout: 3s, reconnect_max: 1s}
ari: {url: %q, username: %q, password: %q, application: %q, reconnect_max: 1s}
nats: {embedded: {listen: "127.0.0.1:%d"}}
`, filepath.Join(dir, "data"), dirPath, httpPort, bench.AMIAddr, bench.AMIUser, bench.AMISecret,
		bench.ARIURL, bench.ARIUser, bench.ARIPassword, testbench.UniqueName("agentd-crash"), natsPort)
	configPath := filepath.Join(dir, "agentd.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(cfg), 0o600))
	return childSetup{
		binary:     buildAgentd(t),
		configPath: configPath,
		logPath:    filepath.Join(dir, "agentd.log"),
		base:       "http://127.0.0.1:" + strconv.Itoa(httpPort),
		natsURL:    "nats://127.0.0.1:" + strconv.Itoa(natsPort),
	}
}

// child is one running agentd process.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs agentd and waits until /readyz returns 200. Its log is
// appended to logPath. The process is stopped when the test ends.
func (s childSetup) start(t *testing.T) *child {
	t.Helper()
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer logFile.Close()
	cmd := exec.Command(s.binary, "run", "-config", s.configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.stop(t) })

	require.Eventually(t, func() bool {
		select {
		case <-c.exited:
			return true // reported below
		default:
		}
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "agentd did not become ready; log in %s", s.logPath)
	select {
	case <-c.exited:
		log, _ := os.ReadFile(s.logPath)
		t.Fatalf("agentd exited during start: %s", log)
	default:
	}
	return c
}

// kill sends SIGKILL and waits for the process to end.
func (c *child) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	<-c.exited
}

// stop ends a process still running with SIGTERM, then SIGKILL.
func (c *child) stop(t *testing.T) {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("agentd pid %d did not stop within 15 s of SIGTERM; sending SIGKILL", c.cmd.Process.Pid)
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.exited
	}
}

// burstStep is one request of the cycle each agent repeats in the burst,
// with the session state and pause id a 200 response carries.
type burstStep struct {
	route   string
	pauseID string
	typ     agent.EventType
	state   agent.State
}

var burstCycle = []burstStep{
	{"/api/v1/asterisk_login/", "", agent.EventLoggedIn, agent.StateReady},
	{"/api/v1/asterisk_pause/", "7", agent.EventPaused, agent.StatePaused},
	{"/api/v1/asterisk_pause/", "8", agent.EventPaused, agent.StatePaused},
	{"/api/v1/asterisk_unpause/", "8", agent.EventUnpaused, agent.StateReady},
	{"/api/v1/asterisk_logout/", "", agent.EventLoggedOut, agent.StateOffline},
}

// runBurst repeats burstCycle for each agent until stop is closed or a
// request fails, and returns per agent the steps that got a 200 response,
// in order. Each step changes the session, so each 200 is one event.
func runBurst(base string, agents []e2eAgent, stop <-chan struct{}, answered *atomic.Int64) (map[string][]burstStep, map[string]error) {
	var (
		mu    sync.Mutex
		ok    = map[string][]burstStep{}
		ended = map[string]error{}
		wg    sync.WaitGroup
	)
	for _, a := range agents {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				step := burstCycle[i%len(burstCycle)]
				o := tryPost(base, a, step.route, step.pauseID)
				mu.Lock()
				switch {
				case o.code == http.StatusOK:
					ok[a.ID] = append(ok[a.ID], step)
					answered.Add(1)
				case o.err == nil:
					ended[a.ID] = fmt.Errorf("%s: %d %s", step.route, o.code, o.error)
				default:
					ended[a.ID] = o.err
				}
				done := o.code != http.StatusOK
				mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	wg.Wait()
	return ok, ended
}

func TestKillDuringBurst(t *testing.T) {
	bench := testbench.Require(t)
	var agents []e2eAgent
	for i := range 8 {
		if i%2 == 0 {
			agents = append(agents, newAgent("sales", "support"))
		} else {
			agents = append(agents, newAgent("support", "billing"))
		}
	}
	t.Cleanup(func() { removeMembers(t, bench, agents...) })
	setup := newChildSetup(t, bench, agents)
	first := setup.start(t)

	stop := make(chan struct{})
	var answered atomic.Int64
	var (
		ok    map[string][]burstStep
		ended map[string]error
		wg    sync.WaitGroup
	)
	wg.Go(func() { ok, ended = runBurst(setup.base, agents, stop, &answered) })
	// SIGKILL in the middle of the burst, once every agent had time for a
	// few cycles.
	require.Eventually(t, func() bool { return answered.Load() >= int64(6*len(agents)) }, 30*time.Second, 5*time.Millisecond)
	first.kill(t)
	close(stop)
	wg.Wait()
	for _, a := range agents {
		t.Logf("agent %s: %d requests answered with 200, then: %v", a.ID, len(ok[a.ID]), ended[a.ID])
	}

	setup.start(t)
	js := openJetStream(t, setup.natsURL)
	for _, a := range agents {
		eventually(t, 10*time.Second, "Asterisk matches the stored session of "+a.ID, func() string {
			s, _ := bucketSession(t, js, a.ID)
			if s.State == "" {
				s.State = agent.StateOffline
			}
			return asteriskMismatch(t, bench, a, s)
		})
		checkStoreAgrees(t, js, a, ok[a.ID])
	}
}

// checkStoreAgrees checks the session bucket and the event stream against
// the requests that got a 200 response. Each of them is an event, in
// order, and at most one more request (the one in flight at the kill) is
// stored. The bucket contains the session of the last event.
func checkStoreAgrees(t *testing.T, js jetstream.JetStream, a e2eAgent, answered []burstStep) {
	t.Helper()
	all := streamEvents(t, js, a.ID)
	api := filterEvents(all, "", agent.SourceAPI)
	require.GreaterOrEqual(t, len(api), len(answered), "agent %s: every request answered with 200 is in the stream", a.ID)
	assert.LessOrEqual(t, len(api), len(answered)+1, "agent %s: at most the request in flight is stored unanswered", a.ID)
	for i, step := range answered {
		assert.Equal(t, step.typ, api[i].Type, "agent %s event %d", a.ID, i)
		assert.Equal(t, step.state, api[i].State, "agent %s event %d", a.ID, i)
		if step.state == agent.StatePaused {
			require.NotNil(t, api[i].Pause, "agent %s event %d", a.ID, i)
			assert.Equal(t, step.pauseID, api[i].Pause.ID, "agent %s event %d", a.ID, i)
		}
	}
	for i := 1; i < len(all); i++ {
		assert.Equal(t, all[i-1].Revision+1, all[i].Revision, "agent %s: revisions without gap", a.ID)
	}

	s, found := bucketSession(t, js, a.ID)
	if len(all) == 0 {
		assert.False(t, found, "agent %s: a session in the bucket without an event", a.ID)
		return
	}
	require.True(t, found, "agent %s: events without a session in the bucket", a.ID)
	// Every change is written ahead to the outbox, so a kill between the
	// bucket put and the publish is repaired by the restarted agentd.
	last := all[len(all)-1]
	assert.Equal(t, last.Revision, s.Revision, "agent %s: the bucket holds the session of the last event", a.ID)
	assert.Equal(t, last.State, s.State, "agent %s", a.ID)
}

func TestKillThenUnpauseAndLogout(t *testing.T) {
	bench := testbench.Require(t)
	agents := []e2eAgent{newAgent("sales", "support"), newAgent("support", "billing"), newAgent("sales", "billing")}
	paused := agents[1]
	t.Cleanup(func() { removeMembers(t, bench, agents...) })
	setup := newChildSetup(t, bench, agents)
	first := setup.start(t)
	for _, a := range agents {
		o := tryPost(setup.base, a, "/api/v1/asterisk_login/", "")
		require.Equal(t, http.StatusOK, o.code, "%s %v", o.error, o.err)
	}
	o := tryPost(setup.base, paused, "/api/v1/asterisk_pause/", "7")
	require.Equal(t, http.StatusOK, o.code, "%s %v", o.error, o.err)

	first.kill(t)
	setup.start(t)

	for _, a := range agents {
		want := agent.Session{State: agent.StateReady}
		if a.ID == paused.ID {
			want = agent.Session{State: agent.StatePaused, PauseID: "7"}
		}
		assert.Empty(t, asteriskMismatch(t, bench, a, want), "after the restart")
	}
	o = tryPost(setup.base, paused, "/api/v1/asterisk_unpause/", "7")
	require.Equal(t, http.StatusOK, o.code, "%s %v", o.error, o.err)
	assert.Empty(t, asteriskMismatch(t, bench, paused, agent.Session{State: agent.StateReady}))
	for _, a := range agents {
		o := tryPost(setup.base, a, "/api/v1/asterisk_logout/", "")
		require.Equal(t, http.StatusOK, o.code, "%s %v", o.error, o.err)
		assert.Empty(t, asteriskMismatch(t, bench, a, agent.Session{State: agent.StateOffline}))
	}

	js := openJetStream(t, setup.natsURL)
	got := eventSummaries(streamEvents(t, js, paused.ID))
	assert.Equal(t, []string{
		"logged_in api READY",
		"paused api PAUSED 7",
		"unpaused api READY",
		"logged_out api OFFLINE",
	}, got)
	for _, a := range agents {
		s, found := bucketSession(t, js, a.ID)
		require.True(t, found)
		assert.Equal(t, agent.StateOffline, s.State)
	}
}
