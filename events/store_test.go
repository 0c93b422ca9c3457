package events

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func TestEmbeddedCommitSequence(t *testing.T) {
	dir := t.TempDir()
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, dir), log)
	s.SetAsteriskEntityID("00:11:22:33:44:55")

	nc, err := nats.Connect(s.srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	events := collect(t, nc, DefaultSubjectPrefix+".>")

	a, b := newSimAgent("1001"), newSimAgent("1002")
	changes := []agent.Change{a.login(), b.login(), a.pause(lunch), b.pause(agent.Pause{ID: agent.PauseAfterCall, Name: "After-call work", Type: agent.PauseProductive}),
		a.unpause(), b.logout(), a.call(agent.CallRinging), a.call(agent.CallUp), a.call(agent.CallNone), a.logout(), b.login()}
	for _, c := range changes {
		commit(t, s, c)
	}

	got := events.wait(t, len(changes))
	require.Len(t, got, len(changes))
	assert.Equal(t, []string{"1001:logged_in", "1002:logged_in", "1001:paused", "1002:paused",
		"1001:unpaused", "1002:logged_out", "1001:call_state_changed", "1001:call_state_changed",
		"1001:call_state_changed", "1001:logged_out", "1002:logged_in"}, eventTypes(got))
	assert.Equal(t, agent.StateOnCall, got[7].EffectiveState)
	ids := map[string]bool{}
	for i, ev := range got {
		assert.False(t, ids[ev.ID], "event id %s repeated", ev.ID)
		ids[ev.ID] = true
		assert.Equal(t, changes[i].Session.Revision, ev.Revision)
		assert.Equal(t, "node-a", ev.Node)
		assert.Equal(t, "00:11:22:33:44:55", ev.AsteriskEntityID)
	}
	require.NotNil(t, got[2].Pause)
	assert.Equal(t, EventPause{ID: "2", Name: "Lunch", Type: agent.PauseRecreational}, *got[2].Pause)
	assert.Equal(t, "2", got[4].PreviousPauseID)

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), DefaultBucket)
	require.NoError(t, err)
	for _, sim := range []*simAgent{a, b} {
		entry, err := kv.Get(context.Background(), sim.agent.ID)
		require.NoError(t, err)
		assert.JSONEq(t, sessionJSON(t, sim.sess), string(entry.Value()), "bucket value of agent %s", sim.agent.ID)
	}

	stats := s.Stats()
	assert.Equal(t, uint64(len(changes)), stats.Published)
	assert.Zero(t, stats.Failed)
	assert.Zero(t, stats.Outboxed)
	assert.Zero(t, stats.OutboxDepth)
	up, _, lastErr := s.Status()
	assert.True(t, up)
	require.NoError(t, lastErr)

	nc.Close()
	closeStore(t, s)

	reopened := openStore(t, testConfig(t, dir), log)
	defer closeStore(t, reopened)
	sessions, err := reopened.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 2)
	assert.JSONEq(t, sessionJSON(t, a.sess), sessionJSON(t, sessions[0]))
	assert.JSONEq(t, sessionJSON(t, b.sess), sessionJSON(t, sessions[1]))
}

func TestEmbeddedStreamAndBucketConfig(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.StreamMaxAge = 48 * time.Hour
	cfg.DuplicateWindow = time.Hour
	cfg.BucketHistory = 3
	log, _ := newTestLogger()
	s := openStore(t, cfg, log)
	defer closeStore(t, s)

	ctx := context.Background()
	stream, err := s.js.Stream(ctx, DefaultStream)
	require.NoError(t, err)
	info := stream.CachedInfo()
	assert.Equal(t, []string{"agentd.agent.>"}, info.Config.Subjects)
	assert.Equal(t, jetstream.FileStorage, info.Config.Storage)
	assert.Equal(t, 48*time.Hour, info.Config.MaxAge)
	assert.Equal(t, time.Hour, info.Config.Duplicates)
	assert.Equal(t, 1, info.Config.Replicas)

	kv, err := s.js.KeyValue(ctx, DefaultBucket)
	require.NoError(t, err)
	status, err := kv.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), status.History())
}

func TestEmbeddedReopenUpdatesStream(t *testing.T) {
	dir := t.TempDir()
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, dir), log)
	closeStore(t, s)

	cfg := testConfig(t, dir)
	cfg.StreamMaxAge = 72 * time.Hour
	s = openStore(t, cfg, log)
	defer closeStore(t, s)
	stream, err := s.js.Stream(context.Background(), DefaultStream)
	require.NoError(t, err)
	assert.Equal(t, 72*time.Hour, stream.CachedInfo().Config.MaxAge)
}

func TestEmbeddedDontListen(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Embedded.DontListen = true
	log, _ := newTestLogger()
	s := openStore(t, cfg, log)
	defer closeStore(t, s)

	a := newSimAgent("2001")
	commit(t, s, a.login())
	commit(t, s, a.pause(lunch))

	sessions, err := s.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 1)
	assert.Equal(t, agent.StatePaused, sessions[0].State)
	assert.Equal(t, uint64(2), sessions[0].Revision)
	assert.Equal(t, uint64(2), s.Stats().Published)
}

func TestEmbeddedUserPassword(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Conn.User = "agentd"
	cfg.Conn.Password = "s3cret"
	log, _ := newTestLogger()
	s := openStore(t, cfg, log)
	defer closeStore(t, s)
	commit(t, s, newSimAgent("3001").login())

	_, err := nats.Connect(s.srv.ClientURL())
	require.Error(t, err, "connect without credentials")

	nc, err := nats.Connect(s.srv.ClientURL(), nats.UserInfo("agentd", "s3cret"))
	require.NoError(t, err)
	nc.Close()
}

func TestCommitAfterClose(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	closeStore(t, s)

	err := s.Commit(context.Background(), newSimAgent("1001").login())
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Sessions(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, s.Close(context.Background()), "second Close")
	up, _, _ := s.Status()
	assert.False(t, up)
}

func TestCommitInvalidAgentID(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)

	c := newSimAgent("10.01").login()
	err := s.Commit(context.Background(), c)
	require.ErrorIs(t, err, ErrInvalidChange)
	assert.NotErrorIs(t, err, agent.ErrStoreUnavailable)
}

func TestSessionsEmptyBucket(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)

	sessions, err := s.Sessions(context.Background())
	require.NoError(t, err)
	assert.Empty(t, sessions)
}

func TestSessionsInvalidBucketValue(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)
	_, err := s.kv.Put(context.Background(), "1001", []byte("{not json"))
	require.NoError(t, err)

	_, err = s.Sessions(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nats kv del agent_sessions 1001")
}

func TestOpenInvalidConfig(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		text   string
	}{
		{"node missing", func(c *Config) { c.Node = "" }, "node"},
		{"node with space", func(c *Config) { c.Node = "node a" }, "node"},
		{"data dir missing", func(c *Config) { c.DataDir = "" }, "data dir"},
		{"prefix with wildcard", func(c *Config) { c.SubjectPrefix = "agentd.*" }, "subject prefix"},
		{"prefix with empty token", func(c *Config) { c.SubjectPrefix = "agentd..agent" }, "subject prefix"},
		{"stream with dot", func(c *Config) { c.Stream = "AGENT.EVENTS" }, "stream name"},
		{"bucket with space", func(c *Config) { c.Bucket = "agent sessions" }, "bucket name"},
		{"stream replicas", func(c *Config) { c.StreamReplicas = 6; c.Conn.URLs = []string{"nats://127.0.0.1:1"} }, "stream replicas"},
		{"embedded replicas", func(c *Config) { c.BucketReplicas = 3 }, "external NATS cluster"},
		{"history", func(c *Config) { c.BucketHistory = 65 }, "bucket history"},
		{"duplicate window", func(c *Config) { c.StreamMaxAge = time.Hour; c.DuplicateWindow = 2 * time.Hour }, "duplicate window"},
		{"two auth methods", func(c *Config) { c.Conn.User = "u"; c.Conn.Token = "t" }, "authentication methods"},
		{"password without user", func(c *Config) { c.Conn.Password = "p" }, "password"},
		{"cert without key", func(c *Config) { c.Conn.TLSCertFile = "cert.pem" }, "TLS client certificate"},
		{"embedded creds", func(c *Config) { c.Conn.CredentialsFile = "x.creds" }, "external NATS server"},
		{"outbox entries", func(c *Config) { c.OutboxMaxEntries = -1 }, "outbox max entries"},
		{"outbox bytes", func(c *Config) { c.OutboxMaxBytes = 1000 }, "outbox max bytes"},
		{"embedded port", func(c *Config) { c.Embedded.Port = 70000 }, "embedded port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			tt.modify(&cfg)
			log, _ := newTestLogger()
			_, err := Open(context.Background(), cfg, log)
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
}

func TestOpenMissingCredentialsFile(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Conn.URLs = []string{"nats://127.0.0.1:1"}
	cfg.Conn.CredentialsFile = "/nonexistent/agentd.creds"
	log, _ := newTestLogger()
	_, err := Open(context.Background(), cfg, log)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "credentials file")
}

func TestOpenEmbeddedPortInUse(t *testing.T) {
	first := testConfig(t, t.TempDir())
	log, _ := newTestLogger()
	s := openStore(t, first, log)
	defer closeStore(t, s)

	second := testConfig(t, t.TempDir())
	second.Embedded.Port = s.srv.Addr().(*net.TCPAddr).Port
	second.Embedded.ReadyTimeout = 500 * time.Millisecond
	_, err := Open(context.Background(), second, log)
	require.ErrorIs(t, err, ErrEmbeddedServer)
}

func TestRedactURL(t *testing.T) {
	assert.Equal(t, "nats://agentd:xxxxx@10.0.0.1:4222", redactURL("nats://agentd:s3cret@10.0.0.1:4222"))
	assert.Equal(t, "nats://xxxxx@10.0.0.1:4222", redactURL("nats://t0ken@10.0.0.1:4222"))
	assert.Equal(t, "tls://10.0.0.1:4222", redactURL("tls://10.0.0.1:4222"))
	assert.Equal(t, "nats://a:xxxxx@h1:4222,nats://h2:4222", redactedURLs([]string{"nats://a:b@h1:4222", "nats://h2:4222"}))
}
