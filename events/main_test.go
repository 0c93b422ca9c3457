package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/contactcenter/agentd/agent"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(testRun{m: m})
}

// testRun removes the nats-server binary built by the tests once they have
// run, before goleak checks for leaked goroutines.
type testRun struct {
	m *testing.M
}

func (r testRun) Run() int {
	code := r.m.Run()
	removeServerBinary()
	return code
}

// logBuffer is a slog handler target that tests can search. It never
// writes to testing.T, because nats.go callbacks may log after a test ends.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	logs := &logBuffer{}
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), logs
}

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// eventSchema compiles docs/events.schema.json with format assertions on.
func eventSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		schema, schemaErr = c.Compile(filepath.Join("..", "docs", "events.schema.json"))
	})
	require.NoError(t, schemaErr)
	return schema
}

func validateEvent(t *testing.T, payload []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	require.NoError(t, err)
	assert.NoError(t, eventSchema(t).Validate(inst), "event %s", payload)
}

// simAgent produces changes the way the agent domain does: one session per
// agent whose revision grows by one with each change.
type simAgent struct {
	agent agent.Agent
	sess  agent.Session
	now   time.Time
}

var lunch = agent.Pause{ID: "2", Name: "Lunch", Type: agent.PauseRecreational}

func newSimAgent(id string) *simAgent {
	return &simAgent{
		agent: agent.Agent{
			ID:         id,
			Name:       "Agent " + id,
			Interface:  "PJSIP/" + id,
			MemberName: "Agent " + id,
			Queues:     []agent.QueueRef{{Name: "sales", Penalty: 0}, {Name: "support", Penalty: 2}},
		},
		sess: agent.Session{AgentID: id, State: agent.StateOffline},
		now:  time.Date(2026, 12, 4, 20, 15, 3, 123_456_789, time.UTC),
	}
}

func (a *simAgent) change(t agent.EventType, state agent.State, pause *agent.Pause) agent.Change {
	prev := a.sess
	a.now = a.now.Add(1500 * time.Millisecond)
	next := agent.Session{
		AgentID:   a.agent.ID,
		State:     state,
		Since:     a.now,
		Interface: a.agent.Interface,
		Revision:  prev.Revision + 1,
	}
	if state != agent.StateOffline {
		next.Members = a.agent.Members()
	}
	if pause != nil {
		next.PauseID = pause.ID
	}
	a.sess = next
	return agent.Change{Type: t, Agent: a.agent, Pause: pause, Previous: prev, Session: next, Source: agent.SourceAPI, OccurredAt: a.now}
}

func (a *simAgent) login() agent.Change {
	return a.change(agent.EventLoggedIn, agent.StateReady, nil)
}

func (a *simAgent) pause(p agent.Pause) agent.Change {
	return a.change(agent.EventPaused, agent.StatePaused, &p)
}

func (a *simAgent) unpause() agent.Change {
	return a.change(agent.EventUnpaused, agent.StateReady, nil)
}

// call changes the call state only, as Asterisk reports a call ringing,
// answered or ended on the agent's interface.
func (a *simAgent) call(state agent.CallState) agent.Change {
	prev := a.sess
	a.now = a.now.Add(500 * time.Millisecond)
	next := prev
	next.CallState = state
	next.Revision = prev.Revision + 1
	a.sess = next
	return agent.Change{Type: agent.EventCallStateChanged, Agent: a.agent, Previous: prev, Session: next, Source: agent.SourceAsterisk, OccurredAt: a.now}
}

func (a *simAgent) logout() agent.Change {
	return a.change(agent.EventLoggedOut, agent.StateOffline, nil)
}

// next returns the change after the current session in the cycle login,
// pause, unpause, logout.
func (a *simAgent) next() agent.Change {
	switch {
	case a.sess.State == agent.StateOffline:
		return a.login()
	case a.sess.State == agent.StatePaused:
		return a.unpause()
	case a.sess.Revision%4 == 1:
		return a.pause(lunch)
	default:
		return a.logout()
	}
}

// collector records the events published on a core NATS subscription and
// validates each against the schema.
type collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func collect(t *testing.T, nc *nats.Conn, subject string) *collector {
	t.Helper()
	c := &collector{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.msgs = append(c.msgs, m)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return c
}

// wait waits for n messages, then validates and decodes them.
func (c *collector) wait(t *testing.T, n int) []Event {
	t.Helper()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.msgs) >= n
	}, 10*time.Second, 10*time.Millisecond, "waiting for %d events", n)

	c.mu.Lock()
	defer c.mu.Unlock()
	events := make([]Event, 0, len(c.msgs))
	for _, m := range c.msgs {
		events = append(events, decodeEventMsg(t, m.Subject, m.Header, m.Data))
	}
	return events
}

// decodeEventMsg validates one event message: schema, subject and header.
func decodeEventMsg(t *testing.T, subj string, header nats.Header, data []byte) Event {
	t.Helper()
	validateEvent(t, data)
	var ev Event
	require.NoError(t, json.Unmarshal(data, &ev))
	assert.Equal(t, ev.ID, header.Get(nats.MsgIdHdr), "Nats-Msg-Id header")
	assert.Equal(t, fmt.Sprintf("%s.%s.%s", DefaultSubjectPrefix, ev.AgentID, ev.Type), subj)
	return ev
}

func testConfig(t *testing.T, dir string) Config {
	t.Helper()
	return Config{
		Node:     "node-a",
		DataDir:  dir,
		Embedded: EmbeddedConfig{Port: -1},
		Conn: ConnConfig{
			ReconnectWaitMin: 20 * time.Millisecond,
			ReconnectWaitMax: 200 * time.Millisecond,
		},
		PublishTimeout: time.Second,
	}
}

func openStore(t *testing.T, cfg Config, log *slog.Logger) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, log)
	require.NoError(t, err)
	return s
}

func closeStore(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
}

func commit(t *testing.T, s *Store, c agent.Change) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Commit(ctx, c), "commit %s of agent %s revision %d", c.Type, c.Session.AgentID, c.Session.Revision)
}

// crash stops the store the way a killed process would: the flusher and
// the connection end, the files are closed, and nothing more is written.
func (s *Store) crash() {
	s.cancelFlush()
	<-s.flusherDone
	s.nc.Close()
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	_ = s.outbox.close()
}

func sessionJSON(t *testing.T, sess agent.Session) string {
	t.Helper()
	b, err := json.Marshal(sess)
	require.NoError(t, err)
	return string(b)
}

func eventTypes(events []Event) []string {
	out := make([]string, 0, len(events))
	for _, ev := range events {
		out = append(out, ev.AgentID+":"+string(ev.Type))
	}
	return out
}

func containsLine(logs *logBuffer, text string) bool {
	return strings.Contains(logs.String(), text)
}
