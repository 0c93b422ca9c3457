package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contactcenter/agentd/internal/bench/latency"
	"github.com/contactcenter/agentd/internal/bench/rawami"
)

// churnAgentBase numbers the churn's agents from bench3001.
const churnAgentBase = 3001

// churnQueues is the number of queues of each churn agent.
const churnQueues = 5

// maxChurnReference bounds the run of the reference client.
const maxChurnReference = 15 * time.Second

// runResult is the outcome of a run of requests: a churn or FastAGI
// sessions.
type runResult struct {
	requests int64
	errors   int64
	first    error
	elapsed  time.Duration
	latency  latency.Summary
}

func (c runResult) rate() float64 {
	return float64(c.requests) / c.elapsed.Seconds()
}

func runChurn(ctx context.Context, opts options, sb *sandbox, r *report, log *slog.Logger) error {
	agents, err := newAgents(churnAgentBase, opts.churnAgents, spreadQueues(churnQueues))
	if err != nil {
		return err
	}
	d, err := startAgentd(ctx, sb, agents, log)
	if err != nil {
		return err
	}
	defer d.stop()
	defer d.reportDropped(ctx, r)

	login := d.bulk(ctx, agents, routeLogin, "READY", opts.concurrency)
	defer func() {
		if err := d.logoutAll(ctx, sb, agents, opts.concurrency); err != nil {
			log.Error("logout after the churn failed", "err", err)
		}
	}()
	if login.errors > 0 {
		return fmt.Errorf("%d of %d logins before the churn failed, first: %w", login.errors, len(agents), login.first)
	}

	r.linef("  %d agents × %d queues logged in; %d workers alternate pause %s and unpause for %s",
		len(agents), churnQueues, opts.churnConcurrency, pauseID, opts.churnDuration)
	var res runResult
	err = profiled("churn", func() error {
		res = churn(ctx, agents, opts.churnConcurrency, opts.churnDuration, func(ag benchAgent, pause bool) error {
			if pause {
				return d.post(ctx, ag, routePause, "PAUSED")
			}
			return d.post(ctx, ag, routeUnpause, "READY")
		})
		return nil
	})
	if err != nil {
		return err
	}
	r.linef("  agentd: %d requests in %s, %.0f requests/s, %d errors", res.requests, res.elapsed.Round(time.Millisecond), res.rate(), res.errors)
	r.latency("agentd HTTP pause and unpause", res.latency)
	if res.first != nil {
		r.linef("  first error: %v", res.first)
	}

	best, err := churnReferences(ctx, opts, sb, r, agents)
	if err != nil {
		return err
	}
	r.ratio("agentd requests/s / best reference requests/s", res.rate(), best, false, 0)
	r.compare("pause churn errors", float64(res.errors), "%.0f", true, 0)
	return nil
}

// churnReferences sends the QueuePause actions of the churn, one round
// trip per worker at a time, over one connection and over a pool, and
// returns the best rate.
func churnReferences(ctx context.Context, opts options, sb *sandbox, r *report, agents []benchAgent) (float64, error) {
	duration := min(opts.churnDuration, maxChurnReference)
	best := 0.0
	for _, size := range []int{1, bulkPoolSize} {
		pool, err := rawami.DialPool(size, sb.amiAddr, sb.amiUser, sb.amiSecret, "off", amiTimeout)
		if err != nil {
			return 0, err
		}
		var next atomic.Uint64
		res := churn(ctx, agents, opts.churnConcurrency, duration, func(ag benchAgent, pause bool) error {
			conn := pool[next.Add(1)%uint64(len(pool))]
			return checkResponses(conn.Send(amiTimeout, rawami.NewAction("QueuePause",
				"Interface", ag.iface, "Paused", fmt.Sprint(pause), "Reason", pauseID)))
		})
		pool.Close()
		r.linef("  reference: QueuePause over %d connection(s): %d actions in %s, %.0f actions/s, %d errors",
			size, res.requests, res.elapsed.Round(time.Millisecond), res.rate(), res.errors)
		r.latency(fmt.Sprintf("reference QueuePause, %d connection(s)", size), res.latency)
		if res.first != nil {
			return 0, fmt.Errorf("reference QueuePause: %w", res.first)
		}
		best = max(best, res.rate())
	}
	return best, nil
}

// churn runs workers that each own every workers-th agent and alternate a
// pause and an unpause on their agents in turn until duration has passed.
// A pause is always followed by its unpause, so every agent ends ready.
func churn(ctx context.Context, agents []benchAgent, workers int, duration time.Duration, request func(ag benchAgent, pause bool) error) runResult {
	var (
		rec      latency.Recorder
		requests atomic.Int64
		errs     errorTally
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(duration)
	timed := func(ag benchAgent, pause bool) {
		t := time.Now()
		err := request(ag, pause)
		rec.Since(t)
		requests.Add(1)
		errs.add(err)
	}
	workers = min(workers, len(agents))
	for w := range workers {
		var own []benchAgent
		for i := w; i < len(agents); i += workers {
			own = append(own, agents[i])
		}
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				ag := own[i%len(own)]
				timed(ag, true)
				timed(ag, false)
			}
		})
	}
	wg.Wait()
	return runResult{requests: requests.Load(), errors: errs.count, first: errs.first, elapsed: time.Since(start), latency: rec.Summary()}
}
