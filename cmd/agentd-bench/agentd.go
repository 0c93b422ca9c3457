package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/internal/bench/latency"
)

// jwtSecret signs the HS256 tokens of the bench agents. Bearer tokens keep
// bcrypt out of the figures: with HTTP Basic, the first request of each
// agent checks a bcrypt hash, which takes milliseconds of CPU.
const jwtSecret = "agentd-bench-hs256-secret-for-loopback-only"

// pauseID is the pause of the benchmark's directory used by the churn.
const pauseID = "7"

// API routes of httpapi.
const (
	routeLogin   = "/api/v1/asterisk_login/"
	routeLogout  = "/api/v1/asterisk_logout/"
	routePause   = "/api/v1/asterisk_pause/"
	routeUnpause = "/api/v1/asterisk_unpause/"
)

// benchAgent is one agent of a generated directory.
type benchAgent struct {
	id     string
	iface  string
	queues []string
	token  string
}

// members returns the queue memberships agentd adds for the agent.
func (a benchAgent) members() []member {
	out := make([]member, len(a.queues))
	for i, q := range a.queues {
		out[i] = member{queue: q, iface: a.iface}
	}
	return out
}

// memberName is the member name agentd sends with the default template
// "{id}_{name}" for the name "Bench <n>".
func (a benchAgent) memberName() string {
	return a.id + "_Bench-" + strings.TrimPrefix(a.id, "bench")
}

// newAgents returns count agents numbered from first, with the queues
// queuesOf returns for the i-th of them. Agent n has the id bench<n> and
// the interface Local/b<n>@agent-phones/n.
func newAgents(first, count int, queuesOf func(i int) []string) ([]benchAgent, error) {
	agents := make([]benchAgent, count)
	exp := time.Now().Add(6 * time.Hour).Unix()
	for i := range agents {
		n := first + i
		id := fmt.Sprintf("bench%d", n)
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"agent_id": id, "exp": exp}).SignedString([]byte(jwtSecret))
		if err != nil {
			return nil, err
		}
		agents[i] = benchAgent{id: id, iface: memberInterface(n), queues: queuesOf(i), token: token}
	}
	return agents, nil
}

// spreadQueues returns the queue function that gives agent i perAgent
// consecutive bulk queues starting at queue i, so the members spread
// evenly over the bulk queues.
func spreadQueues(perAgent int) func(i int) []string {
	return func(i int) []string {
		qs := make([]string, perAgent)
		for j := range qs {
			qs[j] = queueName((i + j) % bulkQueueCount)
		}
		return qs
	}
}

func directoryYAML(agents []benchAgent) string {
	var b strings.Builder
	b.WriteString("pauses:\n  - {id: \"" + pauseID + "\", name: Lunch, type: recreational}\nagents:\n")
	for _, a := range agents {
		fmt.Fprintf(&b, "  - id: %s\n    name: Bench %s\n    interface: %s\n    queues:\n", a.id, strings.TrimPrefix(a.id, "bench"), a.iface)
		for _, q := range a.queues {
			fmt.Fprintf(&b, "      - {name: %s, penalty: 0}\n", q)
		}
	}
	return b.String()
}

// configYAML returns an agentd configuration for the sandbox. natsListen
// is the embedded server's listen address, or "none".
func configYAML(dataDir, directory, httpListen, agiListen, natsListen string, sb *sandbox) string {
	return fmt.Sprintf(`node: agentd-bench
data_dir: %s
directory: %s
log: {level: info}
http:
  listen: %q
  auth: {basic: false, jwt: {algorithm: HS256, secret: %q}}
agi: {listen: %q, max_sessions: 1000}
ami: {address: %q, username: %q, password: %q, action_timeout: 10s, connections: %d}
ari: {url: %q, username: %q, password: %q, application: %q}
nats: {embedded: {listen: %q}}
`, dataDir, directory, httpListen, jwtSecret, agiListen, sb.amiAddr, sb.amiUser, sb.amiSecret, max(sb.amiConnections, 1),
		sb.ariURL, sb.ariUser, sb.ariPassword, fmt.Sprintf("agentd-bench-%d", os.Getpid()), natsListen)
}

// writeConfig writes the directory and the configuration into a new
// temporary directory and returns the configuration path and that
// directory.
func writeConfig(agents []benchAgent, httpListen, agiListen string, sb *sandbox) (configPath, dir string, err error) {
	dir, err = os.MkdirTemp("", "agentd-bench-")
	if err != nil {
		return "", "", err
	}
	directory := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(directory, []byte(directoryYAML(agents)), 0o600); err != nil {
		return "", dir, err
	}
	configPath = filepath.Join(dir, "agentd.yaml")
	cfg := configYAML(filepath.Join(dir, "data"), directory, httpListen, agiListen, "none", sb)
	return configPath, dir, os.WriteFile(configPath, []byte(cfg), 0o600)
}

// agentd is one agentd under test: in this process (d set) or a child
// process (the memory scenario).
type agentd struct {
	d      *daemon.Daemon
	dir    string
	base   string
	client *http.Client
}

// startAgentd starts agentd in this process with agents in its directory
// and waits until /readyz succeeds.
func startAgentd(ctx context.Context, sb *sandbox, agents []benchAgent, log *slog.Logger) (*agentd, error) {
	path, dir, err := writeConfig(agents, "127.0.0.1:0", "127.0.0.1:0", sb)
	if err != nil {
		return nil, err
	}
	cfg, err := daemon.LoadConfig(path, nil)
	if err != nil {
		return nil, err
	}
	d, err := daemon.Start(ctx, daemon.Options{ConfigPath: path, Config: cfg, Logger: log.With("agentd", "in-process")})
	if err != nil {
		removeTemp(dir)
		return nil, err
	}
	a := &agentd{d: d, dir: dir, base: "http://" + d.HTTPAddr().String(), client: newHTTPClient()}
	if err := a.waitReady(ctx, 30*time.Second); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute},
	}
}

func (a *agentd) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := a.client.Get(a.base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("agentd at %s not ready after %s: %s", a.base, timeout, last)
}

// stop stops an in-process agentd and deletes its files.
func (a *agentd) stop() {
	a.client.CloseIdleConnections()
	if a.d != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = a.d.Stop(ctx) // the figures are taken; a slow stop changes none
	}
	removeTemp(a.dir)
}

// removeTemp deletes a temporary directory of the benchmark. A failure is
// printed, because it leaves files behind but changes no figure.
func removeTemp(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "agentd-bench: remove temporary directory:", err)
	}
}

// apiResponse is the part of an API response the benchmark checks.
type apiResponse struct {
	State string `json:"state"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post sends one API request for the agent and checks that it succeeded
// with the expected state.
func (a *agentd) post(ctx context.Context, ag benchAgent, route, expectState string) error {
	var body io.Reader
	if route == routePause || route == routeUnpause {
		body = strings.NewReader(url.Values{"pause_id": {pauseID}}.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+route, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+ag.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}

	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	var out apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("%s for %s: status %d, undecodable body: %w", route, ag.id, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		if out.Error != nil {
			return fmt.Errorf("%s for %s: status %d %s: %s", route, ag.id, resp.StatusCode, out.Error.Code, out.Error.Message)
		}
		return fmt.Errorf("%s for %s: status %d", route, ag.id, resp.StatusCode)
	}
	if out.State != expectState {
		return fmt.Errorf("%s for %s: state %s, expected %s", route, ag.id, out.State, expectState)
	}
	return nil
}

// bulkResult is the outcome of many requests.
type bulkResult struct {
	elapsed time.Duration
	latency latency.Summary
	errors  int
	first   error
}

// bulk sends route for every agent with at most concurrency requests in
// flight and measures each request and the whole.
func (a *agentd) bulk(ctx context.Context, agents []benchAgent, route, expectState string, concurrency int) bulkResult {
	var (
		rec   latency.Recorder
		next  atomic.Int64
		errs  errorTally
		wg    sync.WaitGroup
		begin = time.Now()
	)
	for range min(concurrency, len(agents)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(agents) || ctx.Err() != nil {
					return
				}
				start := time.Now()
				err := a.post(ctx, agents[i], route, expectState)
				rec.Since(start)
				errs.add(err)
			}
		})
	}
	wg.Wait()
	return bulkResult{elapsed: time.Since(begin), latency: rec.Summary(), errors: int(errs.count), first: errs.first}
}

// errorTally counts the errors of concurrent workers and keeps the first.
// Read count and first after the workers have ended.
type errorTally struct {
	mu    sync.Mutex
	count int64
	first error
}

// add counts err and keeps it if it is the first. A nil err is not
// counted.
func (t *errorTally) add(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count++
	if t.first == nil {
		t.first = err
	}
}

// logoutAll logs every agent out, then deletes their Stasis devices. It
// returns an error when a logout failed, since the members of that agent
// are then left to the sweep.
func (a *agentd) logoutAll(ctx context.Context, sb *sandbox, agents []benchAgent, concurrency int) error {
	ctx = context.WithoutCancel(ctx)
	res := a.bulk(ctx, agents, routeLogout, "OFFLINE", concurrency)
	if res.errors > 0 {
		return fmt.Errorf("%d of %d logouts failed, first: %w", res.errors, len(agents), res.first)
	}
	if err := sb.deleteDeviceStates(ctx, a.client, agents); err != nil {
		return fmt.Errorf("delete the Stasis devices of the agents: %w", err)
	}
	return nil
}

// checkMembers counts the members of want that Asterisk does not list or
// lists more than once, and the bench members it lists that are not in
// want.
func checkMembers(sb *sandbox, want []member) (missing, duplicated, unexpected int, err error) {
	found, _, err := sb.benchMembers()
	if err != nil {
		return 0, 0, 0, err
	}
	expected := make(map[member]bool, len(want))
	for _, m := range want {
		expected[m] = true
		switch n := found[m]; {
		case n == 0:
			missing++
		case n > 1:
			duplicated++
		}
	}
	for m := range found {
		if !expected[m] {
			unexpected++
		}
	}
	return missing, duplicated, unexpected, nil
}

// errMembers formats a failed membership check.
func errMembers(missing, duplicated, unexpected int) error {
	if missing+duplicated+unexpected == 0 {
		return nil
	}
	return errors.New(fmt.Sprint("Asterisk state differs: ", missing, " members missing, ", duplicated, " duplicated, ", unexpected, " unexpected"))
}

// droppedEventsMetric counts the Asterisk events agentd dropped because it
// fell behind, by connection.
const droppedEventsMetric = "agentd_asterisk_events_dropped_total"

// reportDropped prints agentd's dropped Asterisk events from /metrics.
// Dropped events are member and pause changes agentd did not see, so they
// belong next to the figures of the same load.
func (a *agentd) reportDropped(ctx context.Context, r *report) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		r.linef("  agentd /metrics: %v", err)
		return
	}
	resp, err := a.client.Do(req)
	if err != nil {
		r.linef("  agentd /metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.linef("  agentd /metrics: %v", err)
		return
	}
	var counts []string
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, droppedEventsMetric+"{"); ok {
			counts = append(counts, strings.ReplaceAll(strings.ReplaceAll(rest, "} ", " "), `"`, ""))
		}
	}
	r.linef("  Asterisk events agentd dropped (%s): %s", droppedEventsMetric, strings.Join(counts, ", "))
}
