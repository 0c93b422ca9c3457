package agi

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

// memStore is an agent.Store in memory that records every change.
type memStore struct {
	mu       sync.Mutex
	sessions map[string]agent.Session
	changes  []agent.Change
}

func newMemStore() *memStore {
	return &memStore{sessions: map[string]agent.Session{}}
}

func (s *memStore) Sessions(context.Context) ([]agent.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]agent.Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out, nil
}

func (s *memStore) Commit(_ context.Context, c agent.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[c.Session.AgentID] = c.Session
	s.changes = append(s.changes, c)
	return nil
}

func (s *memStore) recorded() []agent.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agent.Change(nil), s.changes...)
}

// nopQueues and nopDevices accept every change without Asterisk, for
// benchmarks of the FastAGI path.
type nopQueues struct{}

func (nopQueues) AddMember(context.Context, agent.Member) error           { return nil }
func (nopQueues) RemoveMember(context.Context, string, string) error      { return nil }
func (nopQueues) PauseMember(context.Context, string, bool, string) error { return nil }

type nopDevices struct{}

func (nopDevices) SetDeviceState(context.Context, string, string) error { return nil }

// newService returns an agent.Service over the directory YAML.
func newService(t testing.TB, directory string, queues agent.Queues, devices agent.DeviceStates, store agent.Store, log *slog.Logger) *agent.Service {
	t.Helper()
	dir, err := agent.ParseDirectory("directory.yaml", []byte(directory))
	require.NoError(t, err)
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: devices, Store: store, Logger: log})
	require.NoError(t, err)
	return svc
}
