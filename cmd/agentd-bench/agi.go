package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contactcenter/agentd/agi"
	"github.com/contactcenter/agentd/internal/bench/fastagi"
	"github.com/contactcenter/agentd/internal/bench/latency"
	"github.com/contactcenter/agentd/internal/bench/rawami"
)

// Targets of the FastAGI lookups on loopback.
const (
	agiTargetRate = 20000
	agiTargetP99  = time.Millisecond
)

// agiAgentBase numbers the FastAGI agents from bench4001.
const agiAgentBase = 4001

// agiTimeout bounds one FastAGI session and the wait for one dialplan run.
const agiTimeout = 10 * time.Second

func runAGI(ctx context.Context, opts options, sb *sandbox, r *report, log *slog.Logger) error {
	agents, err := newAgents(agiAgentBase, max(opts.agiInFlight, 1), func(int) []string { return []string{queueName(0)} })
	if err != nil {
		return err
	}
	d, err := startAgentd(ctx, sb, agents, log)
	if err != nil {
		return err
	}
	defer d.stop()
	defer d.reportDropped(ctx, r)

	// A paused agent makes agent_state set every variable.
	if err := d.post(ctx, agents[0], routeLogin, "READY"); err != nil {
		return err
	}
	defer func() {
		if err := d.logoutAll(ctx, sb, agents[:1], 1); err != nil {
			log.Error("logout after the FastAGI scenario failed", "err", err)
		}
	}()
	if err := d.post(ctx, agents[0], routePause, "PAUSED"); err != nil {
		return err
	}

	addr := d.d.AGIAddr().String()
	commands, err := agiCommands(addr, agents[0].id)
	if err != nil {
		return err
	}
	ref, stop, err := startScriptedAGI(commands)
	if err != nil {
		return err
	}
	defer stop()
	if err := agiLoopback(ctx, opts, r, addr, ref, agents[0].id, len(commands)); err != nil {
		return err
	}
	return agiOnAsterisk(ctx, opts, sb, r, addr, ref, agents)
}

// agiCommands runs one agent_state session and returns the commands agentd
// sent.
func agiCommands(addr, agentID string) ([]string, error) {
	commands, err := fastagi.Session(addr, fastagi.Header(addr, "agent_state", "1796415647.48", agentID), agiTimeout)
	if err != nil {
		return nil, err
	}
	if len(commands) == 0 || !strings.HasPrefix(commands[0], "SET VARIABLE ") && !strings.HasPrefix(commands[0], "EXEC ") {
		return nil, fmt.Errorf("agent_state sent %q, expected EXEC or SET VARIABLE commands", commands)
	}
	return commands, nil
}

// agiLoopback measures agent_state sessions against agentd and against the
// reference server, which sends the same commands from memory.
func agiLoopback(ctx context.Context, opts options, r *report, addr, ref, agentID string, commands int) error {
	r.linef("  loopback: %d sessions, %d in flight; agent_state sends %d commands per session", opts.agiSessions, opts.agiConcurrency, commands)
	header := fastagi.Header(addr, "agent_state", "1796415647.48", agentID)
	var res runResult
	err := profiled("agi", func() error {
		res = agiSessions(ctx, addr, header, commands, opts.agiSessions, opts.agiConcurrency)
		return nil
	})
	if err != nil {
		return err
	}
	refRes := agiSessions(ctx, ref, fastagi.Header(ref, "agent_state", "1796415647.48", agentID), commands, opts.agiSessions, opts.agiConcurrency)

	r.linef("  agentd: %.0f lookups/s, %d errors", res.rate(), res.errors)
	r.latency("agentd agent_state session", res.latency)
	r.linef("  reference server (same commands from memory): %.0f lookups/s, %d errors", refRes.rate(), refRes.errors)
	r.latency("reference FastAGI session", refRes.latency)
	if res.first != nil {
		r.linef("  first error: %v", res.first)
	}
	r.compare("FastAGI lookups/s", res.rate(), "%.0f", false, agiTargetRate)
	r.compare("FastAGI p99 ms", res.latency.P99.Seconds()*1000, "%.3f", true, agiTargetP99.Seconds()*1000)
	r.ratio("agentd lookups/s / reference lookups/s", res.rate(), refRes.rate(), false, 0)

	// With fewer sessions in flight each waits less for the CPUs, which
	// the client shares with agentd; the rate shows the load it carried.
	if opts.agiLowConcurrency > 0 && opts.agiLowConcurrency != opts.agiConcurrency {
		r.linef("  loopback again with %d in flight:", opts.agiLowConcurrency)
		low := agiSessions(ctx, addr, header, commands, opts.agiSessions, opts.agiLowConcurrency)
		lowRef := agiSessions(ctx, ref, fastagi.Header(ref, "agent_state", "1796415647.48", agentID), commands, opts.agiSessions, opts.agiLowConcurrency)
		r.linef("  agentd: %.0f lookups/s, %d errors; reference server: %.0f lookups/s", low.rate(), low.errors, lowRef.rate())
		r.latency("agentd agent_state session", low.latency)
		r.latency("reference FastAGI session", lowRef.latency)
		r.compare(fmt.Sprintf("FastAGI lookups/s, %d in flight", opts.agiLowConcurrency), low.rate(), "%.0f", false, agiTargetRate)
		r.compare(fmt.Sprintf("FastAGI p99 ms, %d in flight", opts.agiLowConcurrency), low.latency.P99.Seconds()*1000, "%.3f", true, agiTargetP99.Seconds()*1000)
	}
	return nil
}

// agiSessions runs count sessions with concurrency in flight and checks
// that each got the expected number of commands.
func agiSessions(ctx context.Context, addr, header string, commands, count, concurrency int) runResult {
	var (
		rec  latency.Recorder
		next atomic.Int64
		errs errorTally
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			client := fastagi.NewClient()
			for next.Add(1) <= int64(count) && ctx.Err() == nil {
				t := time.Now()
				got, err := client.Session(addr, header, agiTimeout)
				rec.Since(t)
				if err == nil && len(got) != commands {
					err = fmt.Errorf("session got %d commands, expected %d", len(got), commands)
				}
				errs.add(err)
			}
		})
	}
	wg.Wait()
	return runResult{requests: int64(count), errors: errs.count, first: errs.first, elapsed: time.Since(start), latency: rec.Summary()}
}

// startScriptedAGI starts a FastAGI server on loopback that reads the
// header, sends commands one by one, reading a response line after each,
// and closes. It returns its address and a function that stops it.
func startScriptedAGI(commands []string) (string, func(), error) {
	ln, err := agi.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveScripted(conn, commands) })
		}
	})
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }, nil
}

func serveScripted(conn net.Conn, commands []string) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(agiTimeout))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\n" {
			break
		}
	}
	for _, c := range commands {
		if _, err := io.WriteString(conn, c+"\n"); err != nil {
			return
		}
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
	}
}

// agiOnAsterisk runs the agentd-agi dialplan of the sandbox, extension
// state, on the ;2 half of a Local channel, so no phone rings first. The
// dialplan's AGI() calls, in turn, agentd, the reference server, and a
// closed loopback port, where AGI() fails at connect and the dialplan goes
// on without the hook. Each run is timed from Originate to the UserEvent
// the dialplan sends after the AGI.
func agiOnAsterisk(ctx context.Context, opts options, sb *sandbox, r *report, addr, refAddr string, agents []benchAgent) error {
	closed, err := freePort()
	if err != nil {
		return err
	}
	conn, err := sb.dial("user")
	if err != nil {
		return err
	}
	defer conn.Close()

	slots := make(map[string]chan rawami.Message, len(agents))
	for _, a := range agents {
		slots[a.id] = make(chan rawami.Message, 4)
	}
	go func() {
		for ev := range conn.Events() {
			if ev["UserEvent"] == "AgentState" {
				if ch, ok := slots[ev["AGENT"]]; ok {
					ch <- ev
				}
			}
		}
	}()

	variants := []agiVariant{
		{target: addr, status: "SUCCESS"},
		{target: refAddr, status: "SUCCESS"},
		{target: fmt.Sprintf("127.0.0.1:%d", closed), status: "FAILURE"},
	}
	var next atomic.Int64
	total := int64(len(variants) * opts.agiCalls)
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for s, ag := range agents {
		wg.Go(func() {
			for i := next.Add(1); i <= total && ctx.Err() == nil && errs[s] == nil; i = next.Add(1) {
				errs[s] = dialplanRun(conn, slots[ag.id], &variants[int(i)%len(variants)], ag.id)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	hook, ref, none := variants[0].rec.Summary(), variants[1].rec.Summary(), variants[2].rec.Summary()
	r.linef("  Asterisk: %d runs per variant of the agentd-agi dialplan on Local/state@agentd-agi/n, %d in flight, from Originate to its UserEvent", opts.agiCalls, len(agents))
	r.latency("AGI(agent_state) to agentd", hook)
	r.latency("AGI to the reference server", ref)
	r.latency("AGI to a closed port (no hook)", none)
	r.linef("  extra time of the hook: p50 %s, p99 %s (reference server: p50 %s, p99 %s)",
		latency.Format(hook.P50-none.P50), latency.Format(hook.P99-none.P99),
		latency.Format(ref.P50-none.P50), latency.Format(ref.P99-none.P99))
	return nil
}

// agiVariant is one AGI address of the dialplan runs, with the AGISTATUS
// the dialplan reports for it.
type agiVariant struct {
	target string
	status string
	rec    latency.Recorder
}

// dialplanRun originates one Local channel whose ;2 half runs extension
// state of agentd-agi, and waits for the UserEvent it sends. The ;1 half is
// never answered and ends when ;2 hangs up.
func dialplanRun(conn *rawami.Conn, events chan rawami.Message, v *agiVariant, agentID string) error {
	a := rawami.NewAction("Originate", "Channel", "Local/state@agentd-agi/n", "Async", "true", "Timeout", "10000",
		"Application", "Wait", "Data", "1")
	a.Headers = append(a.Headers,
		rawami.Header{Key: "Variable", Value: "AGENT=" + agentID},
		rawami.Header{Key: "Variable", Value: "AGENTD_AGI_ADDR=" + v.target})

	start := time.Now()
	if err := checkResponses(conn.Send(amiTimeout, a)); err != nil {
		return fmt.Errorf("originate for %s: %w", agentID, err)
	}
	select {
	case ev := <-events:
		v.rec.Since(start)
		if ev["AGISTATUS"] != v.status {
			return fmt.Errorf("AGI to %s for %s: AGISTATUS %s, expected %s", v.target, agentID, ev["AGISTATUS"], v.status)
		}
		if v.status == "SUCCESS" && ev["AGENT_STATE"] == "" {
			return fmt.Errorf("AGI to %s for %s: AGENT_STATE not set", v.target, agentID)
		}
		return nil
	case <-time.After(agiTimeout):
		return fmt.Errorf("no UserEvent for %s within %s (AGI to %s)", agentID, agiTimeout, v.target)
	}
}
