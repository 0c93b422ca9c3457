package agi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

// asteriskParseArgs splits a command line the way parse_args() in
// res/res_agi.c (Asterisk 20–22) does: '"' toggles quoting and starts a
// word after whitespace, '\' makes the next character literal, and
// unquoted spaces and tabs separate words.
func asteriskParseArgs(line string) []string {
	var words [][]byte
	quoted, escaped, whitespace := false, false, true
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"' && !escaped:
			quoted = !quoted
			if quoted && whitespace {
				words = append(words, []byte{})
				whitespace = false
			}
		case (c == ' ' || c == '\t') && !quoted && !escaped:
			whitespace = true
		case c == '\\' && !escaped:
			escaped = true
			continue
		default:
			if whitespace {
				words = append(words, []byte{})
				whitespace = false
			}
			words[len(words)-1] = append(words[len(words)-1], c)
		}
		escaped = false
	}
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = string(w)
	}
	return out
}

// asteriskHeader returns the header Asterisk 22 sends for
// AGI(agi://127.0.0.1/<script>,<args>).
func asteriskHeader(script string, args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agi_network: yes\n")
	if script != "" {
		fmt.Fprintf(&b, "agi_network_script: %s\n", script)
	}
	fmt.Fprintf(&b, "agi_request: agi://127.0.0.1/%s\n", script)
	fmt.Fprintf(&b, "agi_channel: Local/agi@agent-phones-00000018;1\nagi_language: en\nagi_type: Local\n")
	fmt.Fprintf(&b, "agi_uniqueid: 1796415647.48\nagi_version: 22.10.1\nagi_callerid: unknown\n")
	fmt.Fprintf(&b, "agi_context: agentd-agi\nagi_extension: state\nagi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \n")
	for i, a := range args {
		fmt.Fprintf(&b, "agi_arg_%d: %s\n", i+1, a)
	}
	b.WriteString("\n")
	return b.String()
}

// fakeAsterisk speaks Asterisk's side of a FastAGI connection.
type fakeAsterisk struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dialAGI(t testing.TB, addr string) *fakeAsterisk {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return &fakeAsterisk{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (f *fakeAsterisk) write(s string) {
	f.t.Helper()
	_, err := io.WriteString(f.conn, s)
	require.NoError(f.t, err)
}

// readCommand returns the words of the next command, or io.EOF when the
// server closed the connection.
func (f *fakeAsterisk) readCommand() ([]string, error) {
	line, err := f.br.ReadString('\n')
	if err != nil {
		if line != "" {
			return nil, fmt.Errorf("partial command %q: %w", line, err)
		}
		return nil, err
	}
	return asteriskParseArgs(strings.TrimSuffix(line, "\n")), nil
}

// mustCommand reads the next command and fails the test on EOF.
func (f *fakeAsterisk) mustCommand() []string {
	f.t.Helper()
	words, err := f.readCommand()
	require.NoError(f.t, err)
	return words
}

// requireClosed checks that the server closed the connection without
// sending anything more.
func (f *fakeAsterisk) requireClosed() {
	f.t.Helper()
	rest, err := io.ReadAll(f.br)
	require.NoError(f.t, err)
	require.Empty(f.t, string(rest))
}

// requireFailure checks that the server ended the session with the
// "failure" line, which makes Asterisk set AGISTATUS=FAILURE, and closed.
func (f *fakeAsterisk) requireFailure() {
	f.t.Helper()
	rest, err := io.ReadAll(f.br)
	require.NoError(f.t, err)
	require.Equal(f.t, failureLine, string(rest))
}

// serveVariables responds to every SET VARIABLE with "200 result=1" and every
// EXEC MSet with "200 result=0", as Asterisk does, until the server closes
// the connection, and returns the variables set.
func (f *fakeAsterisk) serveVariables() map[string]string {
	f.t.Helper()
	vars := map[string]string{}
	for {
		words, err := f.readCommand()
		if errors.Is(err, io.EOF) {
			return vars
		}
		require.NoError(f.t, err)
		require.GreaterOrEqual(f.t, len(words), 2, "command %q", words)
		switch words[0] + " " + words[1] {
		case "SET VARIABLE":
			require.Len(f.t, words, 4, "command %q", words)
			vars[words[2]] = words[3]
			f.write("200 result=1\n")
		case "EXEC MSet":
			require.Len(f.t, words, 3, "command %q", words)
			maps.Copy(vars, msetPairs(f.t, words[2]))
			f.write("200 result=0\n")
		default:
			f.t.Fatalf("unexpected command %q", words)
		}
	}
}

// msetPlainValue matches the values that MSet keeps unchanged.
var msetPlainValue = regexp.MustCompile("^[^\\x00-\\x1f\\x7f,|\\\\\"'`()\\[\\]{}$]*$")

// msetPairs returns the variables of an MSet argument. It fails the test
// for a value that MSet would change: a comma splits it, and quotes and
// backslashes are dropped.
func msetPairs(t testing.TB, arg string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for pair := range strings.SplitSeq(arg, ",") {
		name, value, ok := strings.Cut(pair, "=")
		require.True(t, ok, "MSet pair %q has no '='", pair)
		require.Regexp(t, msetPlainValue, value, "MSet value of %s", name)
		vars[name] = value
	}
	return vars
}

// runScript runs one session of script against the server at addr.
func runScript(t testing.TB, addr, script string, args ...string) map[string]string {
	t.Helper()
	f := dialAGI(t, addr)
	f.write(asteriskHeader(script, args...))
	return f.serveVariables()
}

// startServer serves srv on a loopback port until the test ends.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.ErrorIs(t, <-done, ErrServerClosed)
	})
	return ln.Addr().String()
}

// newTestServer returns a server with short timeouts for tests.
func newTestServer(t testing.TB, agents Agents, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{CommandTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second, Logger: testLogger(t)}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := NewServer(cfg, agents)
	require.NoError(t, err)
	return srv
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter sends log lines to t.Log, so they show only for failed tests
// or with -v.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// agentCall records one use case call on fakeAgents.
type agentCall struct {
	UseCase string
	AgentID string
	PauseID string
	Source  agent.Source
}

// fakeAgents implements Agents from fixed statuses and records calls.
type fakeAgents struct {
	mu       sync.Mutex
	statuses map[string]agent.Status
	err      error         // returned by the use cases when set
	block    chan struct{} // when set, use cases wait for it to close or for ctx
	calls    []agentCall
	entered  chan struct{} // receives a value when a use case starts, if set
}

func newFakeAgents(statuses ...agent.Status) *fakeAgents {
	f := &fakeAgents{statuses: map[string]agent.Status{}}
	for _, st := range statuses {
		f.statuses[st.Agent.ID] = st
	}
	return f
}

func (f *fakeAgents) Status(agentID string) (agent.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.statuses[agentID]
	if !ok {
		return agent.Status{}, fmt.Errorf("%w: %q", agent.ErrUnknownAgent, agentID)
	}
	return st, nil
}

func (f *fakeAgents) run(ctx context.Context, c agentCall) (agent.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	block, entered, err := f.block, f.entered, f.err
	st, known := f.statuses[c.AgentID]
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return agent.Result{}, ctx.Err()
		}
	}
	switch {
	case err != nil:
		return agent.Result{}, err
	case !known:
		return agent.Result{}, fmt.Errorf("%w: %q", agent.ErrUnknownAgent, c.AgentID)
	}
	return agent.Result{Status: st}, nil
}

func (f *fakeAgents) Login(ctx context.Context, agentID string, src agent.Source) (agent.Result, error) {
	return f.run(ctx, agentCall{"login", agentID, "", src})
}

func (f *fakeAgents) Logout(ctx context.Context, agentID string, src agent.Source) (agent.Result, error) {
	return f.run(ctx, agentCall{"logout", agentID, "", src})
}

func (f *fakeAgents) Pause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error) {
	return f.run(ctx, agentCall{"pause", agentID, pauseID, src})
}

func (f *fakeAgents) Unpause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error) {
	return f.run(ctx, agentCall{"unpause", agentID, pauseID, src})
}

func (f *fakeAgents) recorded() []agentCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]agentCall(nil), f.calls...)
}

var (
	since    = time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	lunch    = agent.Pause{ID: "5", Name: "Lunch \"long\" \\ break", Type: agent.PauseRecreational}
	readyAg  = agent.Status{Agent: agent.Agent{ID: "1001", Interface: "PJSIP/1001"}, Session: agent.Session{AgentID: "1001", State: agent.StateReady, Since: since, Interface: "PJSIP/1001"}}
	pausedAg = agent.Status{Agent: agent.Agent{ID: "1002", Interface: "PJSIP/1002"}, Session: agent.Session{AgentID: "1002", State: agent.StatePaused, PauseID: "5", Since: since, Interface: "PJSIP/1002"}, Pause: &lunch}
	offline  = agent.Status{Agent: agent.Agent{ID: "1003", Interface: "PJSIP/1003"}, Session: agent.Session{AgentID: "1003", State: agent.StateOffline}}
)

// newService returns an agent.Service over the directory YAML.
func newService(t testing.TB, directory string, queues agent.Queues, devices agent.DeviceStates, store agent.Store, log *slog.Logger) *agent.Service {
	t.Helper()
	dir, err := agent.ParseDirectory("directory.yaml", []byte(directory))
	require.NoError(t, err)
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: devices, Store: store, Logger: log})
	require.NoError(t, err)
	return svc
}
