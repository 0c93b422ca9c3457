package events

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lineBuffer is an io.Writer that tests can read while Tail writes.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := strings.TrimSpace(b.buf.String())
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

func runTail(cfg TailConfig) (*lineBuffer, func() error) {
	out := &lineBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, cfg, out) }()
	return out, func() error {
		cancel()
		return <-done
	}
}

func TestTailFromStartFiltered(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)

	a, b := newSimAgent("1001"), newSimAgent("1002")
	commit(t, s, a.login())
	commit(t, s, b.login())
	commit(t, s, a.pause(lunch))

	out, stop := runTail(TailConfig{Conn: ConnConfig{URLs: []string{s.srv.ClientURL()}}, AgentID: "1001", FromStart: true})
	require.Eventually(t, func() bool { return len(out.lines()) >= 2 }, 10*time.Second, 10*time.Millisecond)
	commit(t, s, b.logout())
	commit(t, s, a.unpause())
	require.Eventually(t, func() bool { return len(out.lines()) >= 3 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, stop())
	stream, err := s.js.Stream(context.Background(), DefaultStream)
	require.NoError(t, err)
	info, err := stream.Info(context.Background())
	require.NoError(t, err)
	assert.Zero(t, info.State.Consumers, "consumer of Tail deleted")

	lines := out.lines()
	require.Len(t, lines, 3)
	assert.Contains(t, lines[0], "2026-12-04T20:15:04.623Z seq=1 agent_id=1001 type=logged_in state=READY previous_state=OFFLINE")
	assert.Contains(t, lines[0], "queues=sales,support source=api node=node-a revision=1")
	assert.Contains(t, lines[1], "seq=3 agent_id=1001 type=paused state=PAUSED previous_state=READY effective_state=PAUSED pause_id=2 pause_name=\"Lunch\"")
	assert.Contains(t, lines[2], "seq=5 agent_id=1001 type=unpaused")
}

func TestTailNewEventsOnly(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)

	a := newSimAgent("1001")
	commit(t, s, a.login())

	out, stop := runTail(TailConfig{Conn: ConnConfig{URLs: []string{s.srv.ClientURL()}}})
	// The consumer starts at an unknown moment, so commit until a line
	// shows up. The event committed before Tail started must not show up.
	deadline := time.Now().Add(10 * time.Second)
	for len(out.lines()) == 0 && time.Now().Before(deadline) {
		commit(t, s, a.next())
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, stop())
	require.NotEmpty(t, out.lines())

	for _, line := range out.lines() {
		assert.NotContains(t, line, "revision=1 ", "event stored before Tail started")
	}
}

func TestTailInvalidConfig(t *testing.T) {
	err := Tail(context.Background(), TailConfig{AgentID: "10.01"}, &lineBuffer{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestTailServerDown(t *testing.T) {
	port := freePort(t)
	err := Tail(context.Background(), TailConfig{Conn: ConnConfig{URLs: []string{"nats://127.0.0.1:" + strconv.Itoa(port)}}}, &lineBuffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to NATS")
}

func TestTailMissingStream(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)

	err := Tail(context.Background(), TailConfig{Conn: ConnConfig{URLs: []string{s.srv.ClientURL()}}, Stream: "OTHER"}, &lineBuffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "consume stream OTHER")
}
