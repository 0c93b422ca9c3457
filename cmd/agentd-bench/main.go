// Command agentd-bench measures agentd against the sandbox Asterisk and
// against reference clients run in the same process, on the same machine,
// in the same run, and prints each figure with its ratio to the reference.
//
//	eval "$(scripts/asterisk-sandbox.sh env)"
//	go run ./cmd/agentd-bench [-scenarios login,shift,churn,agi,events,memory] [flags]
//
// "make bench" starts the sandbox when needed and runs every scenario. All
// traffic stays on 127.0.0.1. Every queue member the benchmark adds is
// removed before it exits, also after a failed scenario.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// scenarioNames lists the scenarios in the order they run.
var scenarioNames = []string{"login", "shift", "churn", "agi", "events", "memory"}

// options are the command-line flags.
type options struct {
	scenarios   []string
	concurrency int

	loginIterations int
	loginWarmup     int
	loginQueues     []int

	shiftAgents int
	shiftQueues int

	churnAgents      int
	churnDuration    time.Duration
	churnConcurrency int

	agiSessions       int
	agiConcurrency    int
	agiLowConcurrency int
	agiCalls          int
	agiInFlight       int

	eventsCount int
	natsServer  string

	agentdBin    string
	memoryAgents int
	memorySettle time.Duration
	// heapProfileDir receives heap profiles of the memory scenario's
	// child; empty takes none.
	heapProfileDir string

	amiConnections int
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("agentd-bench", flag.ContinueOnError)
	scenarios := fs.String("scenarios", strings.Join(scenarioNames, ","), "comma-separated scenarios to run: "+strings.Join(scenarioNames, ", "))
	fs.IntVar(&o.concurrency, "concurrency", 128, "HTTP requests in flight at once for the shift start and the bulk logins and logouts")
	fs.StringVar(&profileDir, "cpuprofile-dir", "", "write a CPU profile of the measured part of each in-process scenario to DIR/<scenario>.pprof")
	fs.StringVar(&traceDir, "trace-dir", "", "write an execution trace of the measured part of each in-process scenario to DIR/<scenario>.trace")

	fs.IntVar(&o.loginIterations, "login-iterations", 200, "measured logins per queue count and per client")
	fs.IntVar(&o.loginWarmup, "login-warmup", 20, "unmeasured logins per queue count and per client before the measured ones")
	fs.IntVar(&o.amiConnections, "ami-connections", 1, "agentd's ami.connections: its AMI sessions, the event session included")
	loginQueues := fs.String("login-queues", "1,10,50", "comma-separated queue counts of the login scenario (at most 50)")

	fs.IntVar(&o.shiftAgents, "shift-agents", 1000, "agents that log in at shift start")
	fs.IntVar(&o.shiftQueues, "shift-queues", 5, "queues of each agent at shift start")

	fs.IntVar(&o.churnAgents, "churn-agents", 500, "logged-in agents that pause and unpause")
	fs.DurationVar(&o.churnDuration, "churn-duration", 60*time.Second, "duration of the pause churn")
	fs.IntVar(&o.churnConcurrency, "churn-concurrency", 64, "pause and unpause requests in flight at once")

	fs.IntVar(&o.agiSessions, "agi-sessions", 50000, "FastAGI agent_state sessions on loopback")
	fs.IntVar(&o.agiConcurrency, "agi-concurrency", 16, "FastAGI sessions in flight at once on loopback")
	fs.IntVar(&o.agiLowConcurrency, "agi-low-concurrency", 4, "FastAGI sessions in flight in a second loopback run; 0 skips it")
	fs.IntVar(&o.agiCalls, "agi-calls", 200, "Local channels per variant (with and without the AGI hook) on Asterisk")
	fs.IntVar(&o.agiInFlight, "agi-in-flight", 8, "Local channels in flight at once on Asterisk")

	fs.IntVar(&o.eventsCount, "events-count", 2000, "state changes measured per NATS server")
	fs.StringVar(&o.natsServer, "nats-server", "", "nats-server binary for the external server (default: built with go build into a temporary directory)")

	fs.StringVar(&o.agentdBin, "agentd-bin", "bin/agentd", "agentd binary run as a child process by the memory scenario (make build)")
	fs.IntVar(&o.memoryAgents, "memory-agents", 10000, "agents in the directory and logged in for the memory scenario")
	fs.StringVar(&o.heapProfileDir, "heapprofile-dir", "", "write heap profiles of the memory scenario's agentd, taken over its debug.listen, to DIR/memory-after-login.heap and DIR/memory-settled.heap")
	fs.DurationVar(&o.memorySettle, "memory-settle", 130*time.Second, "wait after the logins before the settled RSS is read; the Go runtime forces a GC every 2 minutes")
	if err := fs.Parse(args); err != nil {
		return o, err
	}

	for _, name := range strings.Split(*scenarios, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(scenarioNames, name) {
			return o, fmt.Errorf("unknown scenario %q: use %s", name, strings.Join(scenarioNames, ", "))
		}
		o.scenarios = append(o.scenarios, name)
	}
	for _, s := range strings.Split(*loginQueues, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 || n > benchQueueCount {
			return o, fmt.Errorf("-login-queues: %q is not a queue count from 1 to %d", s, benchQueueCount)
		}
		o.loginQueues = append(o.loginQueues, n)
	}
	if o.shiftQueues < 1 || o.shiftQueues > bulkQueueCount {
		return o, fmt.Errorf("-shift-queues %d: use 1 to %d", o.shiftQueues, bulkQueueCount)
	}
	return o, nil
}

func main() {
	os.Exit(runMain(os.Args[1:]))
}

// runMain returns the exit status: 2 for invalid flags, 1 for a failed
// scenario or cleanup.
func runMain(args []string) int {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentd-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "agentd-bench:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, opts options) error {
	sb, err := sandboxFromEnv()
	if err != nil {
		return err
	}
	sb.amiConnections = opts.amiConnections
	log := newLogger()
	r := newReport(os.Stdout)
	r.header(sb)

	if n, err := sb.sweep(); err != nil {
		return fmt.Errorf("remove members left by an earlier run: %w", err)
	} else if n > 0 {
		log.Warn("removed bench members that an earlier run left in Asterisk", "members", n)
	}
	var failed []error
	asteriskPID := sandboxAsteriskPID()
	for _, name := range opts.scenarios {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		r.section(name)
		if waited, idle := waitAsteriskIdle(ctx, asteriskPID); !idle {
			r.linef("  Asterisk still busy after %s of waiting; the figures share the CPUs with it", waited.Round(time.Second))
		} else if waited > 2*idleWindow {
			r.linef("  waited %s for Asterisk to become idle", waited.Round(time.Second))
		}
		cpuBefore := takeCPUSnapshot(asteriskPID)
		err := runScenario(ctx, name, opts, sb, r, log)
		r.linef("  %s", cpuUse(cpuBefore, takeCPUSnapshot(asteriskPID)))
		if err != nil {
			r.linef("  FAILED: %v", err)
			failed = append(failed, fmt.Errorf("%s: %w", name, err))
		}
		// Each scenario removes its own members, so a leftover is a
		// failed cleanup.
		switch n, err := sb.sweep(); {
		case err != nil:
			failed = append(failed, fmt.Errorf("%s: check for members left in Asterisk: %w", name, err))
		case n > 0:
			failed = append(failed, fmt.Errorf("%s: cleanup failed: %d bench members were left in Asterisk; the sweep removed them", name, n))
		}
		r.linef("  (scenario took %s)", time.Since(start).Round(time.Second))
		runtime.GC()
	}
	r.summary()
	return errors.Join(failed...)
}

func runScenario(ctx context.Context, name string, opts options, sb *sandbox, r *report, log *slog.Logger) error {
	switch name {
	case "login":
		return runLogin(ctx, opts, sb, r, log)
	case "shift":
		return runShift(ctx, opts, sb, r, log)
	case "churn":
		return runChurn(ctx, opts, sb, r, log)
	case "agi":
		return runAGI(ctx, opts, sb, r, log)
	case "events":
		return runEvents(ctx, opts, r, log)
	case "memory":
		return runMemory(ctx, opts, sb, r, log)
	}
	return fmt.Errorf("unknown scenario %q", name)
}
