package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/contactcenter/agentd/internal/bench/rawami"
)

// shiftTarget is the target time for 1,000 agents with 5 queues each.
const shiftTarget = 5 * time.Second

// Member numbers of the shift start: agents bench1001 on, and the
// reference's interfaces from b51001 on.
const (
	shiftAgentBase     = 1001
	shiftReferenceBase = 51001
)

// Pool size of the bulk references besides a single connection.
const bulkPoolSize = 4

func runShift(ctx context.Context, opts options, sb *sandbox, r *report, log *slog.Logger) error {
	agents, err := newAgents(shiftAgentBase, opts.shiftAgents, spreadQueues(opts.shiftQueues))
	if err != nil {
		return err
	}
	var want []member
	for _, a := range agents {
		want = append(want, a.members()...)
	}
	d, err := startAgentd(ctx, sb, agents, log)
	if err != nil {
		return err
	}
	defer d.stop()
	defer d.reportDropped(ctx, r)

	r.linef("  %d agents × %d queues over %d queues, %d HTTP requests in flight", len(agents), opts.shiftQueues, bulkQueueCount, opts.concurrency)
	var login bulkResult
	err = profiled("shift", func() error {
		login = d.bulk(ctx, agents, routeLogin, "READY", opts.concurrency)
		return nil
	})
	if err != nil {
		return err
	}
	missing, duplicated, unexpected, checkErr := checkMembers(sb, want)

	logoutErr := d.logoutAll(ctx, sb, agents, opts.concurrency)
	r.linef("  agentd: all %d logins done in %s, %d errors", len(agents), login.elapsed.Round(time.Millisecond), login.errors)
	r.latency("agentd HTTP login (each request)", login.latency)
	if login.first != nil {
		r.linef("  first error: %v", login.first)
	}
	if checkErr != nil {
		return fmt.Errorf("QueueStatus after the shift start: %w", checkErr)
	}
	r.linef("  QueueStatus afterwards: %d members expected, %d missing, %d duplicated, %d unexpected", len(want), missing, duplicated, unexpected)
	if logoutErr != nil {
		return logoutErr
	}

	refs, err := shiftReferences(sb, want)
	if err != nil {
		return err
	}
	best := refs[0]
	for i, size := range []int{1, bulkPoolSize} {
		r.linef("  reference: the %d QueueAdd pipelined over %d connection(s) in %s", len(want), size, refs[i].Round(time.Millisecond))
		best = min(best, refs[i])
	}
	r.compare(fmt.Sprintf("shift start %d×%d seconds", len(agents), opts.shiftQueues), login.elapsed.Seconds(), "%.2f", true, shiftTarget.Seconds())
	r.compare("shift start errors", float64(login.errors), "%.0f", true, 0)
	if err := errMembers(missing, duplicated, unexpected); err != nil {
		r.fail("shift start Asterisk state exact", err.Error())
	} else {
		r.compare("shift start members wrong", 0, "%.0f", true, 0)
	}
	r.ratio("agentd time / best reference time", login.elapsed.Seconds(), best.Seconds(), true, 0)
	return nil
}

// shiftReferences adds the same number of members with pipelined QueueAdd,
// all in flight at once, over one connection and over a pool, and removes
// them after each run. The interfaces differ from agentd's.
func shiftReferences(sb *sandbox, agentdMembers []member) ([]time.Duration, error) {
	members := make([]member, len(agentdMembers))
	actions := make([]rawami.Action, len(agentdMembers))
	offset := shiftReferenceBase - shiftAgentBase
	for i, m := range agentdMembers {
		var n int
		if _, err := fmt.Sscanf(m.iface, "Local/b%d@", &n); err != nil {
			return nil, err
		}
		members[i] = member{queue: m.queue, iface: memberInterface(n + offset)}
		actions[i] = rawami.NewAction("QueueAdd", "Queue", m.queue, "Interface", members[i].iface,
			"Penalty", "0", "Paused", "false", "MemberName", fmt.Sprintf("bench%d_Bench-%d", n+offset, n+offset))
	}
	cleanup, err := sb.dial("off")
	if err != nil {
		return nil, err
	}
	defer cleanup.Close()

	var out []time.Duration
	for _, size := range []int{1, bulkPoolSize} {
		pool, err := rawami.DialPool(size, sb.amiAddr, sb.amiUser, sb.amiSecret, "off", amiTimeout)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		sendErr := checkResponses(pool.Send(amiTimeout, actions...))
		elapsed := time.Since(start)
		pool.Close()
		if err := removeMembers(cleanup, members); err != nil {
			return nil, err
		}
		if sendErr != nil {
			return nil, fmt.Errorf("reference QueueAdd over %d connection(s): %w", size, sendErr)
		}
		out = append(out, elapsed)
	}
	return out, nil
}
