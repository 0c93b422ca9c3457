package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
)

// stagedEventID returns the event id of a staged change.
func stagedEventID(t *testing.T, st agent.StagedChange) string {
	t.Helper()
	sc, ok := st.(*stagedChange)
	require.True(t, ok, "staged change of type %T", st)
	return sc.eventID
}

func TestCloseWaitsForStagedChange(t *testing.T) {
	for _, end := range []string{"release", "withdraw"} {
		t.Run(end, func(t *testing.T) {
			dir := t.TempDir()
			log, _ := newTestLogger()
			s := openStore(t, testConfig(t, dir), log)
			a := newSimAgent("1001")
			commit(t, s, a.login())
			loggedIn := a.sess
			staged := stage(t, s, a.pause(lunch))

			closed := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				closed <- s.Close(ctx)
			}()
			require.Eventually(t, func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.closed
			}, 5*time.Second, time.Millisecond)
			select {
			case err := <-closed:
				t.Fatalf("Close returned %v while a change was staged", err)
			case <-time.After(100 * time.Millisecond):
			}
			paused := a.sess
			_, err := s.Stage(context.Background(), a.unpause())
			require.ErrorIs(t, err, ErrClosed, "a stage after Close began")
			a.sess = paused

			if end == "release" {
				require.NoError(t, staged.Release(context.Background()))
			} else {
				a.sess = loggedIn
				require.NoError(t, staged.Withdraw(context.Background()))
			}
			require.NoError(t, <-closed)

			reopened := openStore(t, testConfig(t, dir), log)
			defer closeStore(t, reopened)
			assert.Zero(t, reopened.Stats().OutboxDepth, "Close stored or dropped the staged change")
			sessions, err := reopened.Sessions(context.Background())
			require.NoError(t, err)
			require.Len(t, sessions, 1)
			assert.JSONEq(t, sessionJSON(t, a.sess), sessionJSON(t, sessions[0]))
		})
	}
}

// TestHeldChangesCountTowardOutboxMaxEntries fills the outbox with staged
// changes: a further stage or commit fails, and a withdrawal still goes in.
func TestHeldChangesCountTowardOutboxMaxEntries(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.OutboxMaxEntries = 2
	log, _ := newTestLogger()
	s := openStore(t, cfg, log)
	nc := connectEmbedded(t, s)
	events := collect(t, nc, DefaultSubjectPrefix+".>")

	a, b, c := newSimAgent("1001"), newSimAgent("1002"), newSimAgent("1003")
	first := stage(t, s, a.login())
	second := stage(t, s, b.login())
	_, err := s.Stage(context.Background(), c.login())
	require.ErrorIs(t, err, ErrOutboxFull)
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	c.sess = agent.Session{AgentID: "1003", State: agent.StateOffline}
	require.ErrorIs(t, s.Commit(context.Background(), c.login()), ErrOutboxFull)
	c.sess = agent.Session{AgentID: "1003", State: agent.StateOffline}

	b.sess = agent.Session{AgentID: "1002", State: agent.StateOffline}
	require.NoError(t, second.Withdraw(context.Background()), "a withdrawal in a full outbox")
	require.NoError(t, first.Release(context.Background()))
	commit(t, s, c.login())

	assert.Equal(t, []string{"1001:logged_in", "1003:logged_in"}, eventTypes(events.wait(t, 2)))
	closeStore(t, s)

	reopened := openStore(t, cfg, log)
	defer closeStore(t, reopened)
	sessions, err := reopened.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 2)
	assert.Equal(t, []string{"1001", "1003"}, []string{sessions[0].AgentID, sessions[1].AgentID})
}

// TestCrashWithStagedChangesKeepsOrder crashes with one staged change
// open, one withdrawn and a commit of a third agent stored after them.
// After the restart the open one counts as done, the commit stored again
// leaves no second event, and the withdrawn one never appears.
func TestCrashWithStagedChangesKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, dir), log)
	a, b, c := newSimAgent("1001"), newSimAgent("1002"), newSimAgent("1003")
	commit(t, s, a.login())
	commit(t, s, b.login())

	_ = stage(t, s, a.pause(lunch))
	loggedIn := b.sess
	withdrawn := stage(t, s, b.pause(lunch))
	withdrawnID := stagedEventID(t, withdrawn)
	b.sess = loggedIn
	require.NoError(t, withdrawn.Withdraw(context.Background()))
	// Another agent's commit passes the open staged change.
	commit(t, s, c.login())
	assert.Equal(t, 1, s.Stats().OutboxDepth, "the open staged change")
	s.crash()

	reopened := openStore(t, testConfig(t, dir), log)
	defer closeStore(t, reopened)
	require.Eventually(t, func() bool { return reopened.Stats().OutboxDepth == 0 }, 10*time.Second, 10*time.Millisecond)
	events := readStream(t, reopened.srv.ClientURL())
	assert.Equal(t, []string{"1001:logged_in", "1002:logged_in", "1003:logged_in", "1001:paused"}, eventTypes(events))
	for _, ev := range events {
		assert.NotEqual(t, withdrawnID, ev.ID, "the withdrawn change is never published")
	}
	sessions, err := reopened.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 3)
	for i, sim := range []*simAgent{a, b, c} {
		assert.JSONEq(t, sessionJSON(t, sim.sess), sessionJSON(t, sessions[i]), "session of agent %s", sim.agent.ID)
	}
}

// TestStagedDuringOutageStoredAfterReturn stages, releases and withdraws
// changes while the external NATS server is stopped.
func TestStagedDuringOutageStoredAfterReturn(t *testing.T) {
	srv := newNATSProcess(t)
	srv.start()
	log, _ := newTestLogger()
	s := openStore(t, externalConfig(t, srv.url()), log)
	defer closeStore(t, s)
	a, b := newSimAgent("1001"), newSimAgent("1002")
	commit(t, s, a.login())
	commit(t, s, b.login())

	srv.stop()
	require.Eventually(t, func() bool { up, _, _ := s.Status(); return !up }, 10*time.Second, 10*time.Millisecond)
	pause := stage(t, s, a.pause(lunch))
	loggedIn := b.sess
	withdrawn := stage(t, s, b.pause(lunch))
	withdrawnID := stagedEventID(t, withdrawn)
	b.sess = loggedIn
	started := time.Now()
	require.NoError(t, pause.Release(context.Background()))
	assert.Less(t, time.Since(started), 500*time.Millisecond, "Release does not wait for NATS while it is down")
	require.NoError(t, withdrawn.Withdraw(context.Background()))
	commit(t, s, b.logout())
	commit(t, s, a.unpause())
	assert.Equal(t, 3, s.Stats().OutboxDepth)

	srv.start()
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth == 0 }, 20*time.Second, 20*time.Millisecond)
	events := readStream(t, srv.url())
	revisions, dups := revisionsByAgent(events)
	assert.Equal(t, []uint64{1, 2, 3}, revisions["1001"])
	assert.Equal(t, []uint64{1, 2}, revisions["1002"])
	assert.Zero(t, dups)
	for _, ev := range events {
		assert.NotEqual(t, withdrawnID, ev.ID, "the withdrawn change is never published")
	}
	assert.JSONEq(t, sessionJSON(t, a.sess), bucketValue(t, srv.url(), "1001"))
	assert.JSONEq(t, sessionJSON(t, b.sess), bucketValue(t, srv.url(), "1002"))
}

// stagingAgents are the agents of runStagingAgents with their final
// sessions, and the event ids of the changes they withdrew.
type stagingAgents struct {
	sims         []*simAgent
	withdrawnIDs map[string]bool
}

// runStagingAgents runs agents that each stage changes and release or
// withdraw them at random, as concurrent requests do. With leaveOpen an
// agent A first stages a change that it neither releases nor withdraws,
// as a crash leaves it, so every later record stays in the outbox.
func runStagingAgents(t *testing.T, s *Store, agents, changes int, leaveOpen bool) stagingAgents {
	t.Helper()
	out := stagingAgents{withdrawnIDs: map[string]bool{}}
	if leaveOpen {
		open := newSimAgent("A")
		stage(t, s, open.login())
		out.sims = append(out.sims, open)
	}

	sims := make([]*simAgent, agents)
	withdrawn := make([][]string, agents)
	errs := make([][]error, agents)
	var wg sync.WaitGroup
	for i := range sims {
		sims[i] = newSimAgent(fmt.Sprintf("A%02d", i))
		wg.Go(func() {
			sim := sims[i]
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range changes {
				before := sim.sess
				st, err := s.Stage(context.Background(), sim.next())
				if err != nil {
					errs[i] = append(errs[i], err)
					return
				}
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				if rng.IntN(3) == 0 {
					withdrawn[i] = append(withdrawn[i], st.(*stagedChange).eventID)
					sim.sess = before
					err = st.Withdraw(context.Background())
				} else {
					err = st.Release(context.Background())
				}
				if err != nil {
					errs[i] = append(errs[i], err)
				}
			}
		})
	}
	wg.Wait()

	for i, sim := range sims {
		require.Empty(t, errs[i], "errors of agent %s", sim.agent.ID)
		for _, id := range withdrawn[i] {
			out.withdrawnIDs[id] = true
		}
	}
	out.sims = append(out.sims, sims...)
	return out
}

// check compares the stream, the bucket and the sessions of a reopened
// store with what the agents staged.
func (a stagingAgents) check(t *testing.T, s *Store) {
	t.Helper()
	require.Eventually(t, func() bool { return s.Stats().OutboxDepth == 0 }, 10*time.Second, 10*time.Millisecond)
	events := readStream(t, s.srv.ClientURL())
	revisions, _ := revisionsByAgent(events)
	for _, ev := range events {
		assert.False(t, a.withdrawnIDs[ev.ID], "withdrawn event %s of agent %s published", ev.ID, ev.AgentID)
	}
	for _, sim := range a.sims {
		assert.Equal(t, sequence(sim.sess.Revision), revisions[sim.agent.ID], "events of agent %s, once each and in order", sim.agent.ID)
		assert.JSONEq(t, sessionJSON(t, sim.sess), bucketValue(t, s.srv.ClientURL(), sim.agent.ID), "bucket value of agent %s", sim.agent.ID)
	}
	sessions, err := s.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, len(a.sims))
	for i, sess := range sessions {
		assert.JSONEq(t, sessionJSON(t, a.sims[i].sess), sessionJSON(t, sess), "session of agent %s", a.sims[i].agent.ID)
	}
}

// TestConcurrentStagesEndInAnyOrder checks that each agent's events
// arrive in order with no withdrawn one, and that the bucket contains the
// final sessions, after a clean close and after a crash with one staged
// change open in front of all the others.
func TestConcurrentStagesEndInAnyOrder(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "crash"}[crash], func(t *testing.T) {
			dir := t.TempDir()
			log, _ := newTestLogger()
			cfg := testConfig(t, dir)
			// Each release waits behind the open change for this long.
			cfg.PublishTimeout = 5 * time.Millisecond
			s := openStore(t, cfg, log)

			agents := runStagingAgents(t, s, 16, 25, crash)
			if crash {
				assert.Greater(t, s.Stats().OutboxDepth, 16, "the records behind the open change wait in the outbox")
				s.crash()
			} else {
				closeStore(t, s)
			}

			reopened := openStore(t, cfg, log)
			defer closeStore(t, reopened)
			agents.check(t, reopened)
		})
	}
}

func TestReleaseWithCanceledContext(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)
	nc := connectEmbedded(t, s)
	events := collect(t, nc, DefaultSubjectPrefix+".>")

	a := newSimAgent("1001")
	staged := stage(t, s, a.login())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, staged.Release(ctx), "the change is durable, so a canceled request still succeeds")
	require.Error(t, staged.Withdraw(context.Background()), "a withdraw after the release")
	commit(t, s, a.pause(lunch))

	// A request canceled while its release waits behind an older change
	// of its agent returns at once, and its change follows later.
	blocking := stage(t, s, a.unpause())
	waiting := stage(t, s, a.pause(lunch))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	started := time.Now()
	require.NoError(t, waiting.Release(ctx))
	assert.Less(t, time.Since(started), 500*time.Millisecond, "Release returns when its context ends")
	require.NoError(t, blocking.Release(context.Background()))

	assert.Equal(t, []string{"1001:logged_in", "1001:paused", "1001:unpaused", "1001:paused"}, eventTypes(events.wait(t, 4)))
}

// encodeRawRecord frames payload the way encodeRecord does, without its
// checks, so that readRecord reads fields as another writer left them.
func encodeRawRecord(payload []byte) []byte {
	buf := make([]byte, recordHeaderSize+len(payload))
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(payload, castagnoli))
	copy(buf[recordHeaderSize:], payload)
	return buf
}

func TestReadRecordWithdrawalFields(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		valid   bool
	}{
		{"complete", `{"seq":3,"agent_id":"1001","withdraws":2}`, true},
		{"with event fields", `{"seq":3,"agent_id":"1001","withdraws":2,"event_id":"x","event":{},"session":{}}`, true},
		{"no agent id", `{"seq":3,"withdraws":2}`, false},
		{"no sequence", `{"agent_id":"1001","withdraws":2}`, false},
		{"withdraws itself", `{"seq":3,"agent_id":"1001","withdraws":3}`, false},
		{"withdraws a later record", `{"seq":3,"agent_id":"1001","withdraws":4}`, false},
		{"zero withdraws and no event", `{"seq":3,"agent_id":"1001","withdraws":0}`, false},
		{"negative withdraws", `{"seq":3,"agent_id":"1001","withdraws":-1}`, false},
		{"withdraws as a string", `{"seq":3,"agent_id":"1001","withdraws":"2"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := encodeRawRecord([]byte(tt.payload))
			rec, n, err := readRecord(bytes.NewReader(buf))
			if !tt.valid {
				require.ErrorIs(t, err, errCorruptRecord)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, int64(len(buf)), n)
			assert.Equal(t, uint64(2), rec.Withdraws)
		})
	}
	_, _, err := readRecord(bytes.NewReader(nil))
	require.ErrorIs(t, err, io.EOF)
}

// TestOutboxWithdrawalAfterAckedTruncation withdraws a held record that
// follows records already stored and truncated away, then reopens.
func TestOutboxWithdrawalAfterAckedTruncation(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	o.truncateSize = 1
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	require.NoError(t, o.ack(1))
	assert.Zero(t, o.size, "a drained outbox is truncated")
	require.NoError(t, o.append(testRecord(t, "1001", 2), true))
	require.NoError(t, o.append(testRecord(t, "1002", 1), false))
	require.NoError(t, o.withdraw(2))
	require.NoError(t, o.ack(3))
	require.NoError(t, o.append(testRecord(t, "1001", 2), true))
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-2"}, pendingIDs(reopened), "only the last, open staged record")
	assert.Equal(t, uint64(5), reopened.records()[0].Seq)
	assert.Equal(t, uint64(6), reopened.nextSeq)
}

// TestOutboxWithdrawCompactsWithHeldRecords withdraws when the file needs
// compaction while other held records stay: they keep their order and
// their hold.
func TestOutboxWithdrawCompactsWithHeldRecords(t *testing.T) {
	dir := t.TempDir()
	encoded, err := encodeRecord(testRecord(t, "1001", 1))
	require.NoError(t, err)
	maxBytes := int64(3*len(encoded)) + 10
	o, _ := openTestOutbox(t, dir, 100, maxBytes)
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))
	require.NoError(t, o.append(testRecord(t, "1002", 1), true))
	require.NoError(t, o.append(testRecord(t, "1003", 1), false))

	require.NoError(t, o.withdraw(2))
	assert.Equal(t, int64(2*len(encoded)), fileSize(t, filepath.Join(dir, outboxLogName)), "rewritten without the withdrawn record")
	head, ok := o.head()
	require.True(t, ok)
	assert.Equal(t, "event-1003-1", head.EventID, "the first record is still held after the compaction")
	require.NoError(t, o.ack(3))
	_, ok = o.head()
	assert.False(t, ok, "only the held record is left")
	o.release(1)
	head, ok = o.head()
	require.True(t, ok)
	assert.Equal(t, "event-1001-1", head.EventID)
	require.NoError(t, o.ack(1))
	require.Error(t, o.ack(2), "the withdrawn record is gone")
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, maxBytes)
	assert.Empty(t, pendingIDs(reopened))
}

// connectEmbedded connects a client to the embedded server of s.
func connectEmbedded(t *testing.T, s *Store) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// TestOtherAgentNotDelayedByStagedChange runs a login of agent 1002 while
// the pause of agent 1001 waits inside Asterisk, as
// agent.TestDifferentAgentsRunInParallel does with a fake store. With the
// outbox store the login must still return at once, with its session in
// the bucket, because nothing orders the changes of different agents.
func TestOtherAgentNotDelayedByStagedChange(t *testing.T) {
	log, _ := newTestLogger()
	cfg := testConfig(t, t.TempDir())
	s := openStore(t, cfg, log)
	defer closeStore(t, s)
	dir, err := agent.ParseDirectory("directory.yaml", []byte(`
pauses:
  - {id: "5", name: Lunch}
agents:
  - {id: "1001", name: Ana, interface: PJSIP/1001, queues: [{name: sales}]}
  - {id: "1002", name: Bruno, interface: PJSIP/1002, queues: [{name: sales}]}
`))
	require.NoError(t, err)
	queues := agenttest.NewQueues("sales")
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: agenttest.NewDeviceStates(), Store: s, Logger: log})
	require.NoError(t, err)
	defer svc.Close()
	ctx := context.Background()
	_, err = svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(t, err)

	inAsterisk := make(chan struct{})
	release := make(chan struct{})
	queues.Hook = func(call string) {
		if call == "QueuePause PJSIP/1001 paused=true reason=5" {
			close(inAsterisk)
			<-release
		}
	}
	paused := make(chan error, 1)
	go func() {
		_, err := svc.Pause(ctx, "1001", "5", agent.SourceAPI)
		paused <- err
	}()
	<-inAsterisk
	// Give the pause's stage time to reach the outbox.
	time.Sleep(50 * time.Millisecond)

	_, err = svc.Login(ctx, "1002", agent.SourceAPI)
	stored := bucketHas(t, s, "1002")
	close(release)
	require.NoError(t, err)
	require.NoError(t, <-paused)

	// A login that waited behind the pause would have returned after
	// PublishTimeout, with its session not yet in the bucket.
	assert.True(t, stored, "session of 1002 in the bucket when its login returns")
}

// bucketHas reports whether the bucket of s contains a session of agentID.
func bucketHas(t *testing.T, s *Store, agentID string) bool {
	t.Helper()
	nc := connectEmbedded(t, s)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), DefaultBucket)
	require.NoError(t, err)
	_, err = kv.Get(context.Background(), agentID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}
