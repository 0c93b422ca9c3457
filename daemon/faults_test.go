package daemon_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/testbench"
)

// The tests in this file restart Asterisk or close its AMI or HTTP server.
// They skip unless AGENTD_TEST_DISRUPTIVE=1, and each leaves Asterisk
// running with its configuration as it found it.

// restartDeadline is how soon after Asterisk is fully booted agentd must
// have put every agent back in its queues and set every device state again.
const restartDeadline = 5 * time.Second

func TestDisruptiveAsteriskRestart(t *testing.T) {
	requireDisruptive(t)
	bench := testbench.Require(t)
	ready := newAgent("sales", "support")
	paused := newAgent("sales", "billing")
	third := newAgent("support", "billing")
	// right's persisted member is written back before the restart, so
	// Asterisk already matches its session afterwards.
	right := newAgent("bench-46")
	// offline logged in and out before the restart: nothing to fix.
	offline := newAgent("sales")
	// stray never logs in, but Asterisk restores a member of it.
	stray := newAgent("support")
	loggedIn := []e2eAgent{ready, paused, third, right}
	all := append(slices.Clone(loggedIn), offline, stray)
	t.Cleanup(func() { removeMembers(t, bench, all...) })
	f := startFaultDaemon(t, bench, all, faultOptions{dataDir: t.TempDir()})
	js := openJetStream(t, f.natsURL)

	for _, a := range loggedIn {
		f.mustPost(t, a, "/api/v1/asterisk_login/", "")
	}
	f.mustPost(t, paused, "/api/v1/asterisk_pause/", "7")
	f.mustPost(t, offline, "/api/v1/asterisk_login/", "")
	f.mustPost(t, offline, "/api/v1/asterisk_logout/", "")
	before := map[string]agent.Session{}
	for _, a := range all {
		before[a.ID] = f.session(t, a)
	}

	// app_queue restores dynamic members from astdb family
	// Queue/PersistentMembers (persistentmembers = yes), one key per queue
	// with "interface;penalty;paused;member name;state interface;reason;
	// wrapup time" per member, and res_stasis_device_state restores the
	// Stasis: devices from family StasisDeviceState (Asterisk 22.10). Without
	// them Asterisk boots with empty queues and unknown devices.
	rightMembers := astdbGet(t, bench, "Queue/PersistentMembers", "bench-46")
	bench.CLI(t, "database deltree Queue/PersistentMembers")
	bench.CLI(t, "database deltree StasisDeviceState")
	bench.CLI(t, `database put Queue/PersistentMembers bench-46 "`+rightMembers+`"`)
	strayMember := fmt.Sprintf("%s;0;0;%s;%s;;0", stray.Interface, stray.memberName(), stray.Interface)
	bench.CLI(t, `database put Queue/PersistentMembers support "`+strayMember+`"`)
	queueLog := bench.QueueLog(t)
	restarted := time.Now()

	require.NoError(t, sandbox(bench, "reboot"))

	took := eventually(t, restartDeadline, "agentd restores Asterisk after the restart", func() string {
		for _, a := range all {
			if diff := asteriskMismatch(t, bench, a, before[a.ID]); diff != "" {
				return diff
			}
		}
		for _, a := range all {
			want := agent.DefaultDeviceStates()[before[a.ID].State]
			if got := bench.DeviceState(t, "Stasis:agent-"+a.ID); got != want {
				return fmt.Sprintf("device of agent %s is %s, want %s", a.ID, got, want)
			}
		}
		return ""
	})
	t.Logf("Asterisk matched every session %s after the sandbox script saw it fully booted", took.Round(time.Millisecond))
	waitReconciledAfter(t, f, restarted)

	for _, a := range all {
		s := f.session(t, a)
		assert.Equal(t, before[a.ID].State, s.State, a.ID)
		assert.Equal(t, before[a.ID].PauseID, s.PauseID, a.ID)
		assert.Equal(t, before[a.ID].Members, s.Members, a.ID)
	}
	for _, a := range all {
		n := len(filterEvents(streamEvents(t, js, a.ID), agent.EventReconciled, agent.SourceReconcile))
		switch a.ID {
		case right.ID, offline.ID:
			assert.Zero(t, n, "reconciled events of agent %s, which Asterisk had right", a.ID)
		default:
			assert.Equal(t, 1, n, "reconciled events of agent %s", a.ID)
		}
	}

	// queue_log: a restored member is added paused in one QueueAdd, which
	// Asterisk 22 logs as ADDMEMBER with data PAUSED and no PAUSE line.
	memberLines := func(a e2eAgent) []string {
		var out []string
		for _, l := range queueLogEvents(t, queueLog, a) {
			if strings.Contains(l, "MEMBER|") || strings.Contains(l, "|PAUSE|") {
				out = append(out, l)
			}
		}
		return out
	}
	assert.ElementsMatch(t, []string{"sales|ADDMEMBER|", "support|ADDMEMBER|"}, memberLines(ready))
	assert.ElementsMatch(t, []string{"sales|ADDMEMBER|PAUSED", "billing|ADDMEMBER|PAUSED"}, memberLines(paused))
	assert.ElementsMatch(t, []string{"support|ADDMEMBER|", "billing|ADDMEMBER|"}, memberLines(third))
	assert.ElementsMatch(t, []string{"support|REMOVEMEMBER|"}, memberLines(stray))
	assert.Empty(t, memberLines(right))
	assert.Empty(t, memberLines(offline))

	sales := bench.CLI(t, "queue show sales")
	assert.Contains(t, sales, ready.memberName())
	assert.Contains(t, sales, paused.memberName()+" ("+paused.Interface)
	assert.Contains(t, sales, "paused:7")
	assert.NotContains(t, bench.CLI(t, "queue show support"), stray.memberName())
}

// astdbGet returns the value of family/key from "database get".
func astdbGet(t *testing.T, bench *testbench.Bench, family, key string) string {
	t.Helper()
	out := bench.CLI(t, "database get "+family+" "+key)
	_, value, found := strings.Cut(out, "Value: ")
	require.True(t, found, "database get %s %s: %s", family, key, out)
	return strings.TrimSpace(value)
}

// waitReconciledAfter waits until agentd has reconnected AMI and ARI to
// the restarted Asterisk and finished a reconciliation after both, so no
// later reconciliation of that restart can add events.
func waitReconciledAfter(t *testing.T, f *faultDaemon, restarted time.Time) {
	t.Helper()
	eventually(t, 10*time.Second, "reconciliation after AMI and ARI reconnected", func() string {
		var last time.Time
		for _, msg := range []string{"Asterisk fully booted; reconciling", "ARI connected to a new Asterisk process"} {
			recs := recordsAfter(f.logs.find(msg, nil), restarted)
			if len(recs) == 0 {
				return "no log " + msg
			}
			last = maxTime(last, recs[len(recs)-1].Time)
		}
		if len(recordsAfter(f.logs.find("reconciliation done", nil), last)) == 0 {
			return "no reconciliation done after " + last.Format(time.StampMilli)
		}
		return ""
	})
}

func recordsAfter(recs []logRecord, t time.Time) []logRecord {
	var out []logRecord
	for _, r := range recs {
		if r.Time.After(t) {
			out = append(out, r)
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// apiOutcome is the outcome of one request sent by tryPost.
type apiOutcome struct {
	route string
	code  int    // 0 when no response arrived
	error string // error code of an error response
	took  time.Duration
	err   error // transport error
}

// outageClient bounds each request well below the HTTP request timeout of
// agentd (10 s), so a request that hangs on a lost connection fails.
var outageClient = &http.Client{Timeout: 5 * time.Second}

// tryPost sends an API request and returns its outcome; unlike post it
// never fails the test, so it may run on any goroutine.
func tryPost(base string, a e2eAgent, route, pauseID string) apiOutcome {
	form := url.Values{}
	if pauseID != "" {
		form.Set("pause_id", pauseID)
	}
	out := apiOutcome{route: route}
	req, err := http.NewRequest(http.MethodPost, base+route, strings.NewReader(form.Encode()))
	if err != nil {
		out.err = err
		return out
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.ID, a.Password)

	start := time.Now()
	resp, err := outageClient.Do(req)
	out.took = time.Since(start)
	if err != nil {
		out.err = err
		return out
	}
	defer resp.Body.Close()

	out.code = resp.StatusCode
	body, _ := io.ReadAll(resp.Body)
	var decoded struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &decoded) == nil {
		out.error = decoded.Error.Code
	}
	return out
}

// unavailableOrOK returns "" when o is a 200 or a 503 asterisk_unavailable.
func unavailableOrOK(o apiOutcome) string {
	switch {
	case o.err != nil:
		return fmt.Sprintf("%s: no response after %s: %v", o.route, o.took, o.err)
	case o.code == http.StatusOK:
		return ""
	case o.code == http.StatusServiceUnavailable && o.error == agent.CodeAsteriskUnavailable:
		return ""
	default:
		return fmt.Sprintf("%s: %d %s after %s", o.route, o.code, o.error, o.took)
	}
}

// churn logs a in and out until stop is closed and returns every outcome.
func churn(base string, a e2eAgent, stop <-chan struct{}) []apiOutcome {
	var out []apiOutcome
	routes := []string{"/api/v1/asterisk_login/", "/api/v1/asterisk_logout/"}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out
		default:
		}
		out = append(out, tryPost(base, a, routes[i%2], ""))
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDisruptiveConnectionLoss(t *testing.T) {
	requireDisruptive(t)
	bench := testbench.Require(t)
	a := newAgent("sales", "support")
	busy := newAgent("billing")
	t.Cleanup(func() { removeMembers(t, bench, a, busy) })
	f := startFaultDaemon(t, bench, []e2eAgent{a, busy}, faultOptions{dataDir: t.TempDir()})
	t.Cleanup(func() {
		assert.NoError(t, sandbox(bench, "ami-on"))
		assert.NoError(t, sandbox(bench, "http-on"))
	})
	f.mustPost(t, a, "/api/v1/asterisk_login/", "")

	// busy logs in and out throughout, so some requests are in flight when
	// a connection drops.
	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		outcomes []apiOutcome
	)
	wg.Go(func() { outcomes = churn(f.base, busy, stop) })

	t.Run("AMI", func(t *testing.T) {
		outageAt := time.Now()
		require.NoError(t, sandbox(bench, "ami-off"))
		expectOutage(t, f, bench, a)
		require.NoError(t, sandbox(bench, "ami-on"))
		expectRecovery(t, f, bench, a)

		checkRetryLogs(t, f.logs, outageAt, "AMI connection attempt failed, retrying with backoff")
		assert.Len(t, f.logs.find("AMI connection lost, reconnecting", nil), 1)
		assert.Len(t, recordsAfter(f.logs.find("AMI connection restored", nil), outageAt), 1)
	})

	t.Run("HTTP", func(t *testing.T) {
		outageAt := time.Now()
		require.NoError(t, sandbox(bench, "http-off"))
		expectOutage(t, f, bench, a)
		require.NoError(t, sandbox(bench, "http-on"))
		expectRecovery(t, f, bench, a)

		// REST requests recover at once; the websocket reconnects after its
		// backoff.
		eventually(t, 5*time.Second, "ARI event stream reconnected", func() string {
			if len(recordsAfter(f.logs.find("ARI event stream connected", nil), outageAt)) == 0 {
				return "not yet"
			}
			return ""
		})
		checkRetryLogs(t, f.logs, outageAt, "ARI event stream not connected, retrying")
		assert.Len(t, recordsAfter(f.logs.find("ARI event stream disconnected", nil), outageAt), 1)
		assert.Len(t, recordsAfter(f.logs.find("ARI event stream connected", nil), outageAt), 1)
	})

	close(stop)
	wg.Wait()
	for _, o := range outcomes {
		assert.Empty(t, unavailableOrOK(o), "request of the busy agent")
	}
	t.Logf("busy agent: %d requests, slowest %s", len(outcomes), slowest(outcomes))
	eventually(t, 10*time.Second, "Asterisk matches the busy agent's session", func() string {
		return asteriskMismatch(t, bench, busy, f.session(t, busy))
	})
}

// outageLength is how long a connection stays closed: a few reconnect
// attempts of agentd, whose backoff is capped at 2 s by default.
const outageLength = 3 * time.Second

// expectOutage checks that pause requests fail at once with 503
// asterisk_unavailable for outageLength and change nothing, in agentd or in
// Asterisk.
func expectOutage(t *testing.T, f *faultDaemon, bench *testbench.Bench, a e2eAgent) {
	t.Helper()
	before := f.session(t, a)
	var last apiOutcome
	eventually(t, 5*time.Second, "pause request rejected as asterisk_unavailable", func() string {
		last = tryPost(f.base, a, "/api/v1/asterisk_pause/", "7")
		if last.code == http.StatusOK {
			// Sent before agentd saw the connection drop: undo it.
			tryPost(f.base, a, "/api/v1/asterisk_unpause/", "7")
		}
		if last.code != http.StatusServiceUnavailable || last.error != agent.CodeAsteriskUnavailable {
			return fmt.Sprintf("%d %s %v", last.code, last.error, last.err)
		}
		return ""
	})
	// Keep the connection closed for several reconnect attempts, and every
	// request rejected at once meanwhile.
	slowestRejection := last.took
	for end := time.Now().Add(outageLength); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		o := tryPost(f.base, a, "/api/v1/asterisk_pause/", "7")
		assert.Equal(t, http.StatusServiceUnavailable, o.code, "%s %v", o.error, o.err)
		assert.Equal(t, agent.CodeAsteriskUnavailable, o.error)
		slowestRejection = max(slowestRejection, o.took)
	}
	t.Logf("requests rejected while down, the slowest in %s", slowestRejection)
	after := f.session(t, a)
	assert.Equal(t, before.State, after.State)
	assert.Equal(t, before.PauseID, after.PauseID)
	// AMI may be closed, so Asterisk is read over the CLI.
	assert.Empty(t, cliMismatch(t, bench, a, after), "nothing half applied")
}

// cliMismatch is asteriskMismatch read from "queue show", which works
// while AMI is closed.
func cliMismatch(t *testing.T, bench *testbench.Bench, a e2eAgent, s agent.Session) string {
	t.Helper()
	for _, q := range a.Queues {
		found, paused, reason := cliMember(bench.CLI(t, "queue show "+q), a.Interface)
		switch {
		case found != s.LoggedIn():
			return fmt.Sprintf("agent %s is %s, member of %s: %t", a.ID, s.State, q, found)
		case found && paused != s.Paused():
			return fmt.Sprintf("agent %s is %s but its member of %s has paused=%t", a.ID, s.State, q, paused)
		case found && paused && reason != s.PauseID:
			return fmt.Sprintf("agent %s is in pause %q but its member of %s has reason %q", a.ID, s.PauseID, q, reason)
		}
	}
	return ""
}

// cliMember finds the member iface in the output of "queue show". Asterisk
// 22 writes a member as "name (iface[ from state interface]) with penalty
// ..." and a paused one with "(paused:reason was N secs ago)", or "(paused
// was ...)" without a reason.
func cliMember(queueShow, iface string) (found, paused bool, reason string) {
	for line := range strings.Lines(queueShow) {
		if !strings.Contains(line, " ("+iface+")") && !strings.Contains(line, " ("+iface+" from ") {
			continue
		}
		_, rest, paused := strings.Cut(line, "(paused")
		if paused && strings.HasPrefix(rest, ":") {
			reason, _, _ = strings.Cut(rest[1:], " was ")
		}
		return true, paused, reason
	}
	return false, false, ""
}

// expectRecovery waits until a pause request succeeds again, then checks
// Asterisk and unpauses.
func expectRecovery(t *testing.T, f *faultDaemon, bench *testbench.Bench, a e2eAgent) {
	t.Helper()
	took := eventually(t, 10*time.Second, "pause request succeeds after the outage", func() string {
		o := tryPost(f.base, a, "/api/v1/asterisk_pause/", "7")
		if o.code != http.StatusOK {
			return fmt.Sprintf("%d %s %v", o.code, o.error, o.err)
		}
		return ""
	})
	t.Logf("recovered %s after the connection was reopened", took.Round(time.Millisecond))
	assert.Empty(t, asteriskMismatch(t, bench, a, f.session(t, a)))
	f.mustPost(t, a, "/api/v1/asterisk_unpause/", "7")
	assert.Empty(t, asteriskMismatch(t, bench, a, f.session(t, a)))
}

// checkRetryLogs checks that the warnings with message msg logged since
// from name at least one failure and never the same error twice in a row.
func checkRetryLogs(t *testing.T, logs *logRecorder, from time.Time, msg string) {
	t.Helper()
	var warned []string
	for _, r := range recordsAfter(logs.find(msg, nil), from) {
		if r.Level >= slog.LevelWarn { // repeats of one error go to Debug
			warned = append(warned, r.Attrs["err"])
		}
	}
	require.NotEmpty(t, warned, "no warning %q", msg)
	for i := 1; i < len(warned); i++ {
		assert.NotEqual(t, warned[i-1], warned[i], "the same error warned twice in a row")
	}
	t.Logf("%q warned %d times: %q", msg, len(warned), warned)
}

func slowest(outcomes []apiOutcome) time.Duration {
	var d time.Duration
	for _, o := range outcomes {
		d = max(d, o.took)
	}
	return d
}
