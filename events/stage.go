package events

import (
	"context"
	"fmt"
	"sync"

	"github.com/contactcenter/agentd/agent"
)

var _ agent.Stager = (*Store)(nil)

// Stage writes c to the outbox and syncs it, like Commit, but holds it
// back from NATS until Release. A request stages its change while its
// Asterisk actions run, so the disk write costs no time of its own.
//
// The flusher stores no change of the agent while one is held, so the
// caller must end each staged change with Release or Withdraw. Changes of
// other agents go on. After a crash a staged change that was not
// withdrawn is stored like any other record: releases are not written to
// disk, so it looks the same as a released change whose response was
// sent.
func (s *Store) Stage(_ context.Context, c agent.Change) (agent.StagedChange, error) {
	rec, err := s.writeChange(c, true)
	if err != nil {
		return nil, err
	}
	return &stagedChange{s: s, seq: rec.Seq, agentID: rec.AgentID, eventID: rec.EventID}, nil
}

// stagedChange is a held outbox record. Close waits for it to end.
type stagedChange struct {
	s       *Store
	seq     uint64
	agentID string
	eventID string
	once    sync.Once
}

// Release lets the flusher store the change and, while NATS is up, waits
// until it is stored, as Commit does.
func (c *stagedChange) Release(ctx context.Context) error {
	err := c.errEnded()
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.outbox.release(c.seq)
		c.s.mu.Unlock()
		c.s.wakeFlusher()
		c.s.waitIfUp(ctx, c.seq)
		c.s.commits.Done()
		err = nil
	})
	return err
}

// Withdraw drops the change and writes a withdrawal record, synced, so a
// restart does not store it either. On an error the change is dropped all
// the same, but a restart may store it.
func (c *stagedChange) Withdraw(context.Context) error {
	err := c.errEnded()
	c.once.Do(func() {
		c.s.mu.Lock()
		err = c.s.outbox.withdraw(c.seq)
		c.s.mu.Unlock()
		c.s.wakeFlusher()
		c.s.commits.Done()
		if err != nil {
			err = fmt.Errorf("withdraw change %s of agent %s: %w", c.eventID, c.agentID, err)
		}
	})
	return err
}

// errEnded is the error of a second Release or Withdraw.
func (c *stagedChange) errEnded() error {
	return fmt.Errorf("staged change %s of agent %s already ended", c.eventID, c.agentID)
}
