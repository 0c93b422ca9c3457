package agent_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

// failCall makes the fake Queues fail every action that starts with
// prefix.
func failCall(f *fixture, prefix string) {
	f.queues.Fail = func(call string) error {
		if strings.HasPrefix(call, prefix) {
			return fmt.Errorf("%w: connection closed", agent.ErrAsteriskUnavailable)
		}
		return nil
	}
}

func failDevice(f *fixture) {
	f.devices.Fail = func(string, string) error {
		return &agent.AsteriskError{Action: "PUT deviceStates", Message: "Asterisk not booted"}
	}
}

// TestFailedRequestsEndTheirStage runs each use case into each kind of
// failure. The fixture checks that no staged change stays open.
func TestFailedRequestsEndTheirStage(t *testing.T) {
	login := func(f *fixture) error {
		_, err := f.svc.Login(t.Context(), "1001", agent.SourceAPI)
		return err
	}
	logout := func(f *fixture) error {
		_, err := f.svc.Logout(t.Context(), "1001", agent.SourceAPI)
		return err
	}
	pause := func(f *fixture) error {
		_, err := f.svc.Pause(t.Context(), "1001", "5", agent.SourceAPI)
		return err
	}
	unpause := func(f *fixture) error {
		_, err := f.svc.Unpause(t.Context(), "1001", "5", agent.SourceAPI)
		return err
	}
	tests := []struct {
		name string
		// before brings agent 1001 to the state the request starts from.
		before []func(*fixture) error
		fail   func(*fixture)
		run    func(*fixture) error
	}{
		{"login QueueAdd", nil, func(f *fixture) { failCall(f, "QueueAdd") }, login},
		{"login device state", nil, failDevice, login},
		{"login again QueuePause", []func(*fixture) error{login, pause}, func(f *fixture) { failCall(f, "QueuePause") }, login},
		{"logout QueuePause", []func(*fixture) error{login}, func(f *fixture) { failCall(f, "QueuePause") }, logout},
		{"logout QueueRemove", []func(*fixture) error{login}, func(f *fixture) { failCall(f, "QueueRemove") }, logout},
		{"logout device state", []func(*fixture) error{login}, failDevice, logout},
		{"pause device state", []func(*fixture) error{login}, failDevice, pause},
		{"unpause QueuePause", []func(*fixture) error{login, pause}, func(f *fixture) { failCall(f, "QueuePause") }, unpause},
		{"unpause device state", []func(*fixture) error{login, pause}, failDevice, unpause},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, step := range tt.before {
				require.NoError(t, step(f))
			}
			before, err := f.svc.Status("1001")
			require.NoError(t, err)
			f.reset()
			f.store.Withdrawn()
			tt.fail(f)

			require.Error(t, tt.run(f))

			assert.Empty(t, f.store.Changes())
			assert.Len(t, f.store.Withdrawn(), 1, "the staged change is withdrawn")
			after, err := f.svc.Status("1001")
			require.NoError(t, err)
			assert.Equal(t, before.Session, after.Session, "the session stays as it was")
		})
	}
}

// TestLoginCommitsAfterFailedStage lets the stage of the
// expected login fail while the commit of the login that happened (one
// queue of two unknown to Asterisk) succeeds.
func TestLoginCommitsAfterFailedStage(t *testing.T) {
	f := newFixture(t)
	f.store.Fail = func(c agent.Change) error {
		if len(c.Session.Members) == 2 {
			return errors.New("outbox write failed")
		}
		return nil
	}

	res, err := f.svc.Login(t.Context(), "1003", agent.SourceAPI)

	require.NoError(t, err)
	assert.Len(t, res.Status.Session.Members, 1)
	assert.Empty(t, f.store.Withdrawn(), "a failed stage has nothing to withdraw")
	changes := f.store.Changes()
	require.Len(t, changes, 1)
	assert.Equal(t, uint64(1), changes[0].Session.Revision)
}

// slowStager delays each Stage of the wrapped store until proceed is
// closed, so the Asterisk actions of a request end first.
type slowStager struct {
	agent.Store
	stager  agent.Stager
	proceed chan struct{}
}

func (s *slowStager) Stage(ctx context.Context, c agent.Change) (agent.StagedChange, error) {
	<-s.proceed
	return s.stager.Stage(ctx, c)
}

func TestStageSlowerThanAsterisk(t *testing.T) {
	f := newFixture(t)
	slow := &slowStager{Store: f.store, stager: f.store, proceed: make(chan struct{})}
	svc, err := agent.NewService(agent.Config{Directory: f.svc.Directory(), Queues: f.queues, DeviceStates: f.devices, Store: slow})
	require.NoError(t, err)
	t.Cleanup(svc.Close)

	type result struct {
		res agent.Result
		err error
	}
	queued := waitCalls(f, 2)
	done := make(chan result, 1)
	go func() {
		res, err := svc.Login(context.Background(), "1001", agent.SourceAPI)
		done <- result{res, err}
	}()
	<-queued
	select {
	case r := <-done:
		t.Fatalf("login returned before its change was staged: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	close(slow.proceed)
	r := <-done
	f.queues.Hook = nil
	require.NoError(t, r.err)
	assert.Equal(t, agent.StateReady, r.res.Status.Session.State)
	require.Len(t, f.store.Changes(), 1)

	failCall(f, "QueuePause")
	_, err = svc.Pause(t.Context(), "1001", "5", agent.SourceAPI)
	require.Error(t, err)
	assert.Len(t, f.store.Withdrawn(), 1, "the withdraw waits for the slow stage")
}

// waitCalls returns a channel closed once the fake Queues recorded n
// calls.
func waitCalls(f *fixture, n int) <-chan struct{} {
	ch := make(chan struct{})
	var mu sync.Mutex
	count := 0
	f.queues.Hook = func(string) {
		mu.Lock()
		defer mu.Unlock()
		count++
		if count == n {
			close(ch)
		}
	}
	return ch
}

// TestConcurrentRequestsWithFailures sends random requests for several
// agents at once while Asterisk and the store fail at random. Every staged
// change ends, and the changes of each agent form one chain of revisions
// that ends in the current session.
func TestConcurrentRequestsWithFailures(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	chance := func(n int) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(n) == 0
	}
	f.queues.Fail = func(string) error {
		if chance(8) {
			return fmt.Errorf("%w: connection closed", agent.ErrAsteriskUnavailable)
		}
		return nil
	}
	f.devices.Fail = func(string, string) error {
		if chance(16) {
			return &agent.AsteriskError{Action: "PUT deviceStates", Message: "Asterisk not booted"}
		}
		return nil
	}
	f.store.Fail = func(agent.Change) error {
		if chance(16) {
			return errors.New("outbox write failed")
		}
		return nil
	}

	ids := []string{"1001", "1002", "1003"}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			local := rand.New(rand.NewPCG(uint64(w), 3))
			for range 200 {
				id := ids[local.IntN(len(ids))]
				ctx := context.Background()
				switch local.IntN(4) {
				case 0:
					_, _ = f.svc.Login(ctx, id, agent.SourceAPI)
				case 1:
					_, _ = f.svc.Logout(ctx, id, agent.SourceAPI)
				case 2:
					_, _ = f.svc.Pause(ctx, id, []string{"5", "7"}[local.IntN(2)], agent.SourceAPI)
				default:
					st, err := f.svc.Status(id)
					if err == nil && st.Session.PauseID != "" {
						_, _ = f.svc.Unpause(ctx, id, st.Session.PauseID, agent.SourceAPI)
					}
				}
			}
		})
	}
	wg.Wait()

	assert.Zero(t, f.store.OpenStaged())
	byAgent := map[string][]agent.Change{}
	changes := f.store.Changes()
	withdrawn := f.store.Withdrawn()
	t.Logf("%d changes stored, %d withdrawn", len(changes), len(withdrawn))
	require.NotEmpty(t, withdrawn, "the failures reached some staged changes")
	for _, c := range changes {
		byAgent[c.Agent.ID] = append(byAgent[c.Agent.ID], c)
	}
	for _, id := range ids {
		changes := byAgent[id]
		for i, c := range changes {
			assert.Equal(t, uint64(i+1), c.Session.Revision, "revision of change %d of agent %s", i, id)
			if i > 0 {
				assert.Equal(t, changes[i-1].Session, c.Previous, "previous session of change %d of agent %s", i, id)
			}
		}
		st, err := f.svc.Status(id)
		require.NoError(t, err)
		if len(changes) > 0 {
			assert.Equal(t, changes[len(changes)-1].Session, st.Session, "current session of agent %s", id)
		}
	}
}
