package ari

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// wsScript plays one accepted websocket connection. n counts connections
// from 1, and ctx ends when the test ends.
type wsScript func(ctx context.Context, n int, conn *websocket.Conn)

// fakeEvents is an httptest server for /ari/events.
type fakeEvents struct {
	srv       *httptest.Server
	stop      context.CancelFunc
	handshake atomic.Int32 // upgrade requests received
	reject    atomic.Pointer[rejection]

	mu          sync.Mutex
	requests    []recordedRequest
	subprotocol string
	closeStatus []websocket.StatusCode
}

// rejection makes the fake respond to upgrade requests with an HTTP error.
type rejection struct {
	status int
	body   string
}

func newFakeEvents(t *testing.T, script wsScript) *fakeEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeEvents{stop: cancel}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(ctx, w, r, script)
	}))
	t.Cleanup(f.srv.Close)
	t.Cleanup(cancel)
	return f
}

func (f *fakeEvents) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, script wsScript) {
	rest := &fakeREST{}
	rest.record(r)
	f.mu.Lock()
	f.requests = append(f.requests, rest.requests...)
	f.mu.Unlock()

	if rej := f.reject.Load(); rej != nil {
		respondJSON(rej.status, rej.body)(w, r)
		return
	}
	n := int(f.handshake.Add(1))
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"ari"}})
	if err != nil {
		return
	}
	defer conn.CloseNow()

	f.mu.Lock()
	f.subprotocol = conn.Subprotocol()
	f.mu.Unlock()
	script(ctx, n, conn)
}

// drain reads until the connection ends, which also responds to pings and the
// close handshake, and records the close status.
func (f *fakeEvents) drain(ctx context.Context, conn *websocket.Conn) {
	for {
		_, _, err := conn.Read(ctx)
		if err != nil {
			f.mu.Lock()
			f.closeStatus = append(f.closeStatus, websocket.CloseStatus(err))
			f.mu.Unlock()
			return
		}
	}
}

func send(ctx context.Context, t *testing.T, conn *websocket.Conn, messages ...string) {
	for _, m := range messages {
		if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Errorf("fake ARI write: %v", err)
			return
		}
	}
}

// channelEvent returns a ChannelStateChange for channel id.
func channelEvent(id string) string {
	return eventJSON(EventChannelStateChange, `"channel":{"id":"`+id+`","name":"PJSIP/1001-1","state":"Up"}`)
}

// runningStream is an EventStream running in a goroutine.
type runningStream struct {
	*EventStream
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startStream runs an EventStream against url until the test ends or
// stop is called.
func startStream(t *testing.T, url string, cfg EventStreamConfig, logger *slog.Logger) *runningStream {
	t.Helper()
	return runStream(t, newStream(t, url, cfg, logger))
}

func newStream(t *testing.T, url string, cfg EventStreamConfig, logger *slog.Logger) *EventStream {
	t.Helper()
	client := newTestClient(t, url, func(c *Config) { c.Logger = logger })
	s, err := NewEventStream(client, cfg)
	require.NoError(t, err)
	return s
}

// runStream starts s.Run in a goroutine until the test ends or stop is
// called.
func runStream(t *testing.T, s *EventStream) *runningStream {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningStream{EventStream: s, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop ends Run and fails the test when Run does not return.
func (rs *runningStream) stop(t *testing.T) {
	t.Helper()
	rs.once.Do(func() {
		rs.cancel()
		select {
		case err := <-rs.done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// fastConfig returns a config with short delays that sends events to ch.
func fastConfig(ch chan<- Event) EventStreamConfig {
	return EventStreamConfig{
		OnEvent:        func(e Event) { ch <- e },
		BackoffInitial: 5 * time.Millisecond,
		BackoffMax:     20 * time.Millisecond,
		PingInterval:   time.Minute,
	}
}

// receive returns the next n events or fails the test.
func receive(t *testing.T, ch <-chan Event, n int) []Event {
	t.Helper()
	var events []Event
	timeout := time.After(10 * time.Second)
	for len(events) < n {
		select {
		case e := <-ch:
			events = append(events, e)
		case <-timeout:
			t.Fatalf("received %d of %d events", len(events), n)
		}
	}
	return events
}

func channelIDs(t *testing.T, events []Event) []string {
	t.Helper()
	var ids []string
	for _, e := range events {
		if e.Type != EventChannelStateChange {
			ids = append(ids, e.Type)
			continue
		}
		p, err := e.Payload()
		require.NoError(t, err)
		ids = append(ids, p.(ChannelStateChange).Channel.ID)
	}
	return ids
}

func TestStreamDeliversEventsInOrder(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, n int, conn *websocket.Conn) {
		for i := range 50 {
			switch i {
			case 10:
				send(ctx, t, conn, eventJSON("ChannelToneDetected", `"channel":{"id":"x"}`))
			case 20:
				send(ctx, t, conn, `{"type":"ChannelStateChange",`)
			case 30:
				send(ctx, t, conn, `{"no":"type"}`)
			}
			send(ctx, t, conn, channelEvent(fmt.Sprint(i)))
		}
		fake.drain(ctx, conn)
	})
	events := make(chan Event, 100)
	s := startStream(t, fake.srv.URL, fastConfig(events), testLogger(t))

	got := receive(t, events, 51)

	var want []string
	for i := range 50 {
		if i == 10 {
			want = append(want, "ChannelToneDetected")
		}
		want = append(want, fmt.Sprint(i))
	}
	assert.Equal(t, want, channelIDs(t, got))
	assert.Equal(t, "agentd", got[0].Application)

	// The counter is incremented just after the event is queued, so it
	// may trail the handler for a moment.
	require.Eventually(t, func() bool { return s.Stats().Events == 51 }, 10*time.Second, time.Millisecond)
	stats := s.Stats()
	assert.Equal(t, uint64(2), stats.Malformed)
	assert.Zero(t, stats.Dropped)

	fake.mu.Lock()
	defer fake.mu.Unlock()
	req := fake.requests[0]
	assert.Equal(t, "/ari/events", req.RawPath)
	assert.Equal(t, "agentd", req.Query.Get("app"))
	assert.Equal(t, "false", req.Query.Get("subscribeAll"))
	assert.Equal(t, testUser, req.User)
	assert.Equal(t, testPassword, req.Password)
	assert.Equal(t, "ari", fake.subprotocol)
}

func TestStreamReconnectsAndCallsOnConnect(t *testing.T) {
	type call struct {
		handshakes int32
		connected  bool
	}
	calls := make(chan call, 10)
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, n int, conn *websocket.Conn) {
		send(ctx, t, conn, channelEvent(fmt.Sprint("conn-", n)))
		if n > 1 {
			fake.drain(ctx, conn)
			return
		}
		// Close only after OnConnect has seen the first connection.
		for len(calls) == 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		_ = conn.Close(websocket.StatusGoingAway, "asterisk restarting")
	})
	events := make(chan Event, 10)
	cfg := fastConfig(events)
	var stream *EventStream
	cfg.OnConnect = func(ctx context.Context) error {
		calls <- call{handshakes: fake.handshake.Load(), connected: stream.Connected()}
		return nil
	}
	stream = newStream(t, fake.srv.URL, cfg, testLogger(t))
	s := runStream(t, stream)

	got := receive(t, events, 2)

	assert.Equal(t, []string{"conn-1", "conn-2"}, channelIDs(t, got))
	for n := int32(1); n <= 2; n++ {
		select {
		case c := <-calls:
			assert.Equal(t, n, c.handshakes, "OnConnect call %d", n)
			assert.True(t, c.connected, "OnConnect call %d ran before the socket was up", n)
		case <-time.After(10 * time.Second):
			t.Fatalf("OnConnect called %d times, want 2", n-1)
		}
	}
	stats := s.Stats()
	assert.Equal(t, uint64(2), stats.Connects)
	assert.Equal(t, uint64(1), stats.Disconnects)
	assert.Equal(t, uint64(2), stats.Attempts)
}

func TestStreamOnConnectErrorReconnects(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, _ int, conn *websocket.Conn) {
		fake.drain(ctx, conn)
	})
	var calls atomic.Int32
	second := make(chan struct{})
	cfg := fastConfig(make(chan Event, 1))
	cfg.OnConnect = func(ctx context.Context) error {
		if calls.Add(1) == 1 {
			return errors.New("subscribe failed")
		}
		close(second)
		return nil
	}
	logs := newLogRecorder(t)
	s := startStream(t, fake.srv.URL, cfg, slog.New(logs))

	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("OnConnect not called again after it failed")
	}

	assert.Equal(t, uint64(2), s.Stats().Connects)
	errs := logs.errs("ARI event stream disconnected")
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "OnConnect: subscribe failed")
}

func TestStreamLogsRepeatedFailureOnce(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, _ int, conn *websocket.Conn) {
		fake.drain(ctx, conn)
	})
	fake.reject.Store(&rejection{status: 503, body: `{"message":"Asterisk not booted"}`})
	logs := newLogRecorder(t)
	s := startStream(t, fake.srv.URL, fastConfig(make(chan Event, 1)), slog.New(logs))

	const retrying = "ARI event stream not connected, retrying"
	require.Eventually(t, func() bool { return logs.count(slog.LevelDebug, retrying) >= 4 }, 10*time.Second, time.Millisecond)

	up, _, lastErr := s.Status()
	assert.False(t, up)
	require.ErrorIs(t, lastErr, ErrUnavailable)
	var apiErr *Error
	require.ErrorAs(t, lastErr, &apiErr)
	assert.Equal(t, "Asterisk not booted", apiErr.Message)
	assert.Equal(t, 1, logs.count(slog.LevelWarn, retrying))
	assert.GreaterOrEqual(t, s.Stats().Failures, uint64(5))

	fake.reject.Store(nil)
	require.Eventually(t, s.Connected, 10*time.Second, time.Millisecond)

	_, since, lastErr := s.Status()
	require.NoError(t, lastErr)
	assert.False(t, since.IsZero())
	assert.Equal(t, 1, logs.count(slog.LevelInfo, "ARI event stream connected"))
}

func TestStreamDialUnauthorized(t *testing.T) {
	fake := newFakeEvents(t, func(context.Context, int, *websocket.Conn) {})
	fake.reject.Store(&rejection{status: 401, body: `{"message":"Authentication required"}`})
	s := startStream(t, fake.srv.URL, fastConfig(make(chan Event, 1)), testLogger(t))

	require.Eventually(t, func() bool { return s.Stats().Failures >= 1 }, 10*time.Second, time.Millisecond)

	_, _, lastErr := s.Status()
	var apiErr *Error
	require.ErrorAs(t, lastErr, &apiErr)
	assert.Equal(t, 401, apiErr.Status)
	assert.Equal(t, "/ari/events", apiErr.Path)
	assert.NotErrorIs(t, lastErr, ErrUnavailable)
}

func TestStreamBackoffGrowsToCap(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	url := ln.URL
	ln.Close()
	cfg := fastConfig(make(chan Event, 1))
	cfg.BackoffInitial = time.Millisecond
	cfg.BackoffMax = 4 * time.Millisecond
	logs := newLogRecorder(t)
	s := startStream(t, url, cfg, slog.New(logs))

	require.Eventually(t, func() bool { return s.Stats().Failures >= 8 }, 10*time.Second, time.Millisecond)
	s.stop(t)

	delays := logs.durations("ARI event stream not connected, retrying", "retry_in")
	require.GreaterOrEqual(t, len(delays), 8)
	for i, d := range delays {
		ceiling := min(time.Millisecond<<i, 4*time.Millisecond)
		assert.LessOrEqual(t, d, ceiling, "delay %d", i)
	}
	_, _, lastErr := s.Status()
	assert.ErrorIs(t, lastErr, ErrUnavailable)
}

func TestStreamPingDetectsDeadPeer(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, n int, conn *websocket.Conn) {
		if n == 1 {
			// Without a read, coder/websocket never sends the pong.
			<-ctx.Done()
			return
		}
		fake.drain(ctx, conn)
	})
	cfg := fastConfig(make(chan Event, 1))
	cfg.PingInterval = 20 * time.Millisecond
	cfg.PingTimeout = 50 * time.Millisecond
	logs := newLogRecorder(t)
	s := startStream(t, fake.srv.URL, cfg, slog.New(logs))

	require.Eventually(t, func() bool { return s.Stats().Connects >= 2 }, 10*time.Second, time.Millisecond)

	assert.GreaterOrEqual(t, s.Stats().PingFailures, uint64(1))
	errs := logs.errs("ARI event stream disconnected")
	require.NotEmpty(t, errs)
	assert.ErrorIs(t, errs[0], ErrPingTimeout)
}

func TestStreamDropsWhenHandlerBlocks(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, _ int, conn *websocket.Conn) {
		for i := range 10 {
			send(ctx, t, conn, channelEvent(fmt.Sprint(i)))
		}
		fake.drain(ctx, conn)
	})
	release := make(chan struct{})
	var delivered atomic.Int32
	cfg := fastConfig(nil)
	cfg.QueueSize = 2
	cfg.OnEvent = func(Event) {
		if delivered.Add(1) == 1 {
			<-release
		}
	}
	logs := newLogRecorder(t)
	s := startStream(t, fake.srv.URL, cfg, slog.New(logs))

	require.Eventually(t, func() bool {
		stats := s.Stats()
		return stats.Events+stats.Dropped == 10
	}, 10*time.Second, time.Millisecond, "the read loop blocked on the handler")
	close(release)

	stats := s.Stats()
	assert.GreaterOrEqual(t, stats.Dropped, uint64(7))
	require.Eventually(t, func() bool { return uint64(delivered.Load()) == stats.Events }, 10*time.Second, time.Millisecond)
	assert.Equal(t, 1, logs.count(slog.LevelWarn, "ARI event queue full, event dropped"))
}

func TestStreamReadLimit(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, n int, conn *websocket.Conn) {
		if n == 1 {
			send(ctx, t, conn, channelEvent(strings.Repeat("x", 2048)))
		}
		send(ctx, t, conn, channelEvent(fmt.Sprint("conn-", n)))
		fake.drain(ctx, conn)
	})
	events := make(chan Event, 10)
	cfg := fastConfig(events)
	cfg.ReadLimit = 1024
	logs := newLogRecorder(t)
	startStream(t, fake.srv.URL, cfg, slog.New(logs))

	got := receive(t, events, 1)

	assert.Equal(t, []string{"conn-2"}, channelIDs(t, got))
	errs := logs.errs("ARI event stream disconnected")
	require.NotEmpty(t, errs)
	assert.ErrorIs(t, errs[0], websocket.ErrMessageTooBig)
}

func TestStreamShutdownClean(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, _ int, conn *websocket.Conn) {
		fake.drain(ctx, conn)
	})
	onConnectDone := make(chan struct{})
	cfg := fastConfig(make(chan Event, 1))
	cfg.OnConnect = func(ctx context.Context) error {
		<-ctx.Done()
		close(onConnectDone)
		return ctx.Err()
	}
	s := startStream(t, fake.srv.URL, cfg, testLogger(t))
	require.Eventually(t, s.Connected, 10*time.Second, time.Millisecond)

	err := s.Run(context.Background())
	require.ErrorIs(t, err, ErrStreamRunning)

	s.stop(t)

	select {
	case <-onConnectDone:
	default:
		t.Error("Run returned before OnConnect")
	}
	assert.False(t, s.Connected())
	require.Eventually(t, func() bool {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return len(fake.closeStatus) == 1
	}, 10*time.Second, time.Millisecond)
	fake.mu.Lock()
	assert.Equal(t, websocket.StatusNormalClosure, fake.closeStatus[0])
	fake.mu.Unlock()

	fake.stop()
	fake.srv.Close()
	goleak.VerifyNone(t)
}

func TestStreamShutdownDeadPeer(t *testing.T) {
	fake := newFakeEvents(t, func(ctx context.Context, _ int, _ *websocket.Conn) {
		<-ctx.Done()
	})
	s := startStream(t, fake.srv.URL, fastConfig(make(chan Event, 1)), testLogger(t))
	require.Eventually(t, s.Connected, 10*time.Second, time.Millisecond)

	// The peer never responds to the close frame, so Run must close the TCP
	// connection itself after closeGrace.
	s.stop(t)

	assert.False(t, s.Connected())
}

func TestStreamRunAgainAfterStop(t *testing.T) {
	var fake *fakeEvents
	fake = newFakeEvents(t, func(ctx context.Context, n int, conn *websocket.Conn) {
		send(ctx, t, conn, channelEvent(fmt.Sprint("conn-", n)))
		fake.drain(ctx, conn)
	})
	events := make(chan Event, 10)
	client := newTestClient(t, fake.srv.URL)
	s, err := NewEventStream(client, fastConfig(events))
	require.NoError(t, err)

	for n := 1; n <= 2; n++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		got := receive(t, events, 1)
		cancel()
		require.NoError(t, <-done)
		assert.Equal(t, []string{fmt.Sprint("conn-", n)}, channelIDs(t, got))
	}
}

func TestNewEventStreamRejectsInvalidConfig(t *testing.T) {
	client := newTestClient(t, "http://127.0.0.1:8088", func(c *Config) { c.Application = "" })
	onEvent := func(Event) {}
	tests := []struct {
		name string
		cfg  EventStreamConfig
		want string
	}{
		{"missing app", EventStreamConfig{OnEvent: onEvent}, "missing Application"},
		{"comma in app", EventStreamConfig{Application: "a,b", OnEvent: onEvent}, `"a,b"`},
		{"missing OnEvent", EventStreamConfig{Application: "agentd"}, "missing OnEvent"},
		{"backoff order", EventStreamConfig{Application: "agentd", OnEvent: onEvent,
			BackoffInitial: time.Second, BackoffMax: time.Millisecond}, "invalid backoff 1s to 1ms"},
		{"negative ping", EventStreamConfig{Application: "agentd", OnEvent: onEvent, PingTimeout: -1}, "invalid PingTimeout -1 in EventStreamConfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEventStream(client, tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestNewEventStreamURL(t *testing.T) {
	client := newTestClient(t, "https://127.0.0.1:8089/asterisk", func(c *Config) { c.Application = "agent d" })

	s, err := NewEventStream(client, EventStreamConfig{OnEvent: func(Event) {}})

	require.NoError(t, err)
	assert.Equal(t, "https://127.0.0.1:8089/asterisk/ari/events?app=agent+d&subscribeAll=false", s.url)
	assert.Equal(t, DefaultQueueSize, s.cfg.QueueSize)
	assert.Equal(t, DefaultPingTimeout, s.cfg.PingTimeout)
}
