package events

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func externalConfig(t *testing.T, url string) Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Conn.URLs = []string{url}
	cfg.Conn.ConnectTimeout = 5 * time.Second
	return cfg
}

// readStream replays the whole stream through a durable consumer and
// returns the events, validated against the schema, in stream order.
func readStream(t *testing.T, url string) []Event {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, DefaultStream, jetstream.ConsumerConfig{
		Durable:       "events-test",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)

	var events []Event
	for {
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		if info.NumPending == 0 {
			return events
		}
		batch, err := cons.Fetch(int(min(info.NumPending, 100)), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			events = append(events, decodeEventMsg(t, msg.Subject(), msg.Headers(), msg.Data()))
			require.NoError(t, msg.Ack())
		}
		require.NoError(t, batch.Error())
	}
}

// revisionsByAgent de-duplicates events by id and returns the revisions of
// each agent in stream order, and the number of duplicates dropped.
func revisionsByAgent(events []Event) (map[string][]uint64, int) {
	seen := map[string]bool{}
	dups := 0
	out := map[string][]uint64{}
	for _, ev := range events {
		if seen[ev.ID] {
			dups++
			continue
		}
		seen[ev.ID] = true
		out[ev.AgentID] = append(out[ev.AgentID], ev.Revision)
	}
	return out, dups
}

func sequence(n uint64) []uint64 {
	out := make([]uint64, 0, n)
	for i := uint64(1); i <= n; i++ {
		out = append(out, i)
	}
	return out
}

func bucketValue(t *testing.T, url, agentID string) string {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), DefaultBucket)
	require.NoError(t, err)
	entry, err := kv.Get(context.Background(), agentID)
	require.NoError(t, err)
	return string(entry.Value())
}

// committer commits the next change of one agent every interval until
// stopped. It records every Commit error.
type committer struct {
	sim    *simAgent
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	errs   []error
	counts int
}

func startCommitter(s *Store, sim *simAgent, interval time.Duration) *committer {
	c := &committer{sim: sim, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(interval):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := s.Commit(ctx, sim.next())
			cancel()
			c.mu.Lock()
			c.counts++
			if err != nil {
				c.errs = append(c.errs, err)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *committer) halt() {
	close(c.stop)
	<-c.done
}

func (c *committer) commits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts
}

func TestExternalOutageUsesOutbox(t *testing.T) {
	srv := newNATSProcess(t)
	srv.start()
	log, logs := newTestLogger()
	s := openStore(t, externalConfig(t, srv.url()), log)
	defer closeStore(t, s)

	sims := []*simAgent{newSimAgent("1001"), newSimAgent("1002"), newSimAgent("1003")}
	var committers []*committer
	for _, sim := range sims {
		committers = append(committers, startCommitter(s, sim, 15*time.Millisecond))
	}
	require.Eventually(t, func() bool { return s.Stats().Published >= 10 }, 10*time.Second, 10*time.Millisecond)

	srv.stop()
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth >= 10 }, 10*time.Second, 10*time.Millisecond,
		"commits during the outage go to the outbox")
	up, _, lastErr := s.Status()
	assert.False(t, up)
	require.Error(t, lastErr)
	before := committers[0].commits()
	time.Sleep(3 * time.Second)
	assert.Greater(t, committers[0].commits(), before+20, "commits go on during the outage")

	srv.start()
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth == 0 }, 20*time.Second, 20*time.Millisecond,
		"outbox flushed after NATS is back")
	time.Sleep(200 * time.Millisecond)
	for _, c := range committers {
		c.halt()
		require.Empty(t, c.errs)
	}
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth == 0 }, 20*time.Second, 20*time.Millisecond)

	events := readStream(t, srv.url())
	revisions, _ := revisionsByAgent(events)
	for _, sim := range sims {
		assert.Equal(t, sequence(sim.sess.Revision), revisions[sim.agent.ID], "events of agent %s, once each and in order", sim.agent.ID)
		assert.JSONEq(t, sessionJSON(t, sim.sess), bucketValue(t, srv.url(), sim.agent.ID), "bucket value of agent %s", sim.agent.ID)
	}

	stats := s.Stats()
	assert.Positive(t, stats.Outboxed)
	assert.Positive(t, stats.Reconnects)
	up, _, lastErr = s.Status()
	assert.True(t, up)
	require.NoError(t, lastErr)
	assert.True(t, containsLine(logs, "NATS unavailable; changes go to the outbox"))
	assert.True(t, containsLine(logs, "outbox flushed"))
}

func TestExternalUnreachableAtStart(t *testing.T) {
	srv := newNATSProcess(t)
	cfg := externalConfig(t, srv.url())
	cfg.Conn.ConnectTimeout = 200 * time.Millisecond
	log, logs := newTestLogger()
	s := openStore(t, cfg, log)
	defer closeStore(t, s)
	assert.True(t, containsLine(logs, "NATS unreachable at start"))

	a := newSimAgent("1001")
	commit(t, s, a.login())
	commit(t, s, a.pause(lunch))
	assert.Equal(t, 2, s.Stats().OutboxDepth)

	sessionsCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := s.Sessions(sessionsCtx)
	cancel()
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	srv.start()
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth == 0 }, 20*time.Second, 20*time.Millisecond)
	commit(t, s, a.unpause())

	revisions, dups := revisionsByAgent(readStream(t, srv.url()))
	assert.Equal(t, []uint64{1, 2, 3}, revisions["1001"])
	assert.Zero(t, dups)
	sessions, err := s.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 1)
	assert.JSONEq(t, sessionJSON(t, a.sess), sessionJSON(t, sessions[0]))
}

func TestExternalOutboxFull(t *testing.T) {
	srv := newNATSProcess(t)
	cfg := externalConfig(t, srv.url())
	cfg.Conn.ConnectTimeout = 100 * time.Millisecond
	cfg.OutboxMaxEntries = 3
	log, logs := newTestLogger()
	s := openStore(t, cfg, log)
	defer func() {
		// NATS stays down, so Close cannot flush and returns at the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		require.NoError(t, s.Close(ctx))
		assert.True(t, containsLine(logs, "closing with changes in the outbox"))
	}()

	a := newSimAgent("1001")
	for range 3 {
		commit(t, s, a.next())
	}
	err := s.Commit(context.Background(), a.next())
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	require.ErrorIs(t, err, ErrOutboxFull)
	assert.Contains(t, err.Error(), "outbox max entries")
	assert.Equal(t, 3, s.Stats().OutboxDepth)
	assert.True(t, containsLine(logs, "writing change to the outbox failed"))
}

func TestExternalOutboxSurvivesCrash(t *testing.T) {
	srv := newNATSProcess(t)
	srv.start()
	cfg := externalConfig(t, srv.url())
	log, _ := newTestLogger()
	first := openStore(t, cfg, log)

	a, b := newSimAgent("1001"), newSimAgent("1002")
	commit(t, first, a.login())
	commit(t, first, b.login())
	srv.stop()
	require.Eventually(t, func() bool { up, _, _ := first.Status(); return !up }, 10*time.Second, 10*time.Millisecond)
	for _, c := range []agent.Change{a.pause(lunch), b.logout(), a.unpause(), b.login()} {
		commit(t, first, c)
	}
	require.Equal(t, 4, first.Stats().OutboxDepth)
	first.crash()

	srv.start()
	second := openStore(t, cfg, log)
	defer closeStore(t, second)
	sessions, err := second.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 2)
	assert.JSONEq(t, sessionJSON(t, a.sess), sessionJSON(t, sessions[0]))
	assert.JSONEq(t, sessionJSON(t, b.sess), sessionJSON(t, sessions[1]))

	require.Eventually(t, func() bool { return second.Stats().OutboxDepth == 0 }, 20*time.Second, 20*time.Millisecond)
	revisions, dups := revisionsByAgent(readStream(t, srv.url()))
	assert.Equal(t, []uint64{1, 2, 3}, revisions["1001"])
	assert.Equal(t, []uint64{1, 2, 3}, revisions["1002"])
	assert.Zero(t, dups)
	assert.JSONEq(t, sessionJSON(t, a.sess), bucketValue(t, srv.url(), "1001"))
	assert.JSONEq(t, sessionJSON(t, b.sess), bucketValue(t, srv.url(), "1002"))
}

// TestExternalReplayDeduplicated stores a change in NATS, then replays the
// same outbox record, as after a crash between the publish and the outbox
// acknowledgement: the stream keeps one copy.
func TestExternalReplayDeduplicated(t *testing.T) {
	srv := newNATSProcess(t)
	srv.start()
	log, _ := newTestLogger()
	s := openStore(t, externalConfig(t, srv.url()), log)
	defer closeStore(t, s)

	a := newSimAgent("1001")
	rec, err := s.newRecord(a.login())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.storeRecord(ctx, rec))
	require.NoError(t, s.storeRecord(ctx, rec))

	assert.Equal(t, uint64(1), s.Stats().Published)
	assert.Equal(t, uint64(1), s.Stats().Duplicates)
	events := readStream(t, srv.url())
	require.Len(t, events, 1)
	assert.Equal(t, rec.EventID, events[0].ID)
}

func TestExternalSessionsAppliesOutbox(t *testing.T) {
	srv := newNATSProcess(t)
	srv.start()
	log, _ := newTestLogger()
	s := openStore(t, externalConfig(t, srv.url()), log)
	defer closeStore(t, s)

	a := newSimAgent("1001")
	commit(t, s, a.login())
	pauseChange := a.pause(lunch)
	rec, err := s.newRecord(pauseChange)
	require.NoError(t, err)

	// Put the record in the outbox without waking the flusher, like a
	// change written during an outage and not yet flushed.
	s.mu.Lock()
	require.NoError(t, s.outbox.append(rec, false))
	s.mu.Unlock()

	sessions, err := s.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 1)
	assert.Equal(t, agent.StatePaused, sessions[0].State)
	assert.Equal(t, uint64(2), sessions[0].Revision)

	s.wakeFlusher()
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth == 0 }, 10*time.Second, 10*time.Millisecond)
	var stored agent.Session
	require.NoError(t, json.Unmarshal([]byte(bucketValue(t, srv.url(), "1001")), &stored))
	assert.Equal(t, uint64(2), stored.Revision)
}
