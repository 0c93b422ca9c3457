package events

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func stage(t *testing.T, s *Store, c agent.Change) agent.StagedChange {
	t.Helper()
	st, err := s.Stage(context.Background(), c)
	require.NoError(t, err, "stage %s of agent %s", c.Type, c.Session.AgentID)
	return st
}

func TestStagedChangePublishedOnRelease(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	defer closeStore(t, s)
	nc, err := nats.Connect(s.srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	events := collect(t, nc, DefaultSubjectPrefix+".>")

	a, b := newSimAgent("1001"), newSimAgent("1002")
	staged := stage(t, s, a.login())
	// A change of another agent does not wait for the staged one.
	commit(t, s, b.login())
	assert.Equal(t, []string{"1002:logged_in"}, eventTypes(events.wait(t, 1)))

	// A later change of the same agent does.
	committed := make(chan error, 1)
	go func() { committed <- s.Commit(context.Background(), a.pause(lunch)) }()
	require.NoError(t, staged.Release(context.Background()))
	require.NoError(t, <-committed)
	assert.Equal(t, []string{"1002:logged_in", "1001:logged_in", "1001:paused"}, eventTypes(events.wait(t, 3)))
	require.Error(t, staged.Release(context.Background()), "a second release")
	assert.Equal(t, uint64(3), s.Stats().Published)
}

func TestWithdrawnChangeNeverPublished(t *testing.T) {
	dir := t.TempDir()
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, dir), log)
	nc, err := nats.Connect(s.srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	events := collect(t, nc, DefaultSubjectPrefix+".>")

	a := newSimAgent("1001")
	commit(t, s, a.login())
	loggedIn := a.sess
	staged := stage(t, s, a.pause(lunch))
	a.sess = loggedIn // the pause did not happen
	require.NoError(t, staged.Withdraw(context.Background()))
	require.Error(t, staged.Withdraw(context.Background()), "a second withdraw")
	commit(t, s, a.pause(lunch))

	got := events.wait(t, 2)
	assert.Equal(t, []string{"1001:logged_in", "1001:paused"}, eventTypes(got))
	assert.Equal(t, uint64(2), got[1].Revision)
	assert.Zero(t, s.Stats().OutboxDepth)
	nc.Close()
	closeStore(t, s)

	reopened := openStore(t, testConfig(t, dir), log)
	defer closeStore(t, reopened)
	sessions, err := reopened.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 1)
	assert.JSONEq(t, sessionJSON(t, a.sess), sessionJSON(t, sessions[0]))
}

func TestStagedChangeStoredAfterCrash(t *testing.T) {
	dir := t.TempDir()
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, dir), log)
	a := newSimAgent("1001")
	commit(t, s, a.login())
	_ = stage(t, s, a.pause(lunch))
	// The process dies while the request runs. Releases are not written
	// to disk, so the change counts as done.
	s.crash()

	reopened := openStore(t, testConfig(t, dir), log)
	defer closeStore(t, reopened)
	sessions, err := reopened.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 1)
	assert.Equal(t, agent.StatePaused, sessions[0].State)
	require.Eventually(t, func() bool { return reopened.Stats().Published == 1 }, 10*time.Second, 10*time.Millisecond,
		"the flusher stores the staged change after the restart")
}

func TestStageAfterClose(t *testing.T) {
	log, _ := newTestLogger()
	s := openStore(t, testConfig(t, t.TempDir()), log)
	closeStore(t, s)

	_, err := s.Stage(context.Background(), newSimAgent("1001").login())
	require.ErrorIs(t, err, agent.ErrStoreUnavailable)
	require.ErrorIs(t, err, ErrClosed)
}
