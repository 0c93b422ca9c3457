package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memoryTargetMiB is the target resident memory with 10,000 agents logged
// in.
const memoryTargetMiB = 100

// memoryAgentBase numbers the memory scenario's agents from bench10001.
const memoryAgentBase = 10001

// memorySampleInterval is the time between two RSS readings while the
// process settles.
const memorySampleInterval = time.Second

func runMemory(ctx context.Context, opts options, sb *sandbox, r *report, log *slog.Logger) error {
	if _, err := os.Stat(opts.agentdBin); err != nil {
		return fmt.Errorf("agentd binary: %w; build it with: make build", err)
	}
	agents, err := newAgents(memoryAgentBase, opts.memoryAgents, spreadQueues(1))
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	path, dir, err := writeConfig(agents, fmt.Sprintf("127.0.0.1:%d", port), "127.0.0.1:0", sb)
	defer removeTemp(dir)
	if err != nil {
		return err
	}
	var env []string
	var debugAddr string
	if opts.heapProfileDir != "" {
		debugPort, err := freePort()
		if err != nil {
			return err
		}
		debugAddr = fmt.Sprintf("127.0.0.1:%d", debugPort)
		env = append(env, "AGENTD_DEBUG_LISTEN="+debugAddr)
	}
	cmd, err := startChild(opts.agentdBin, path, env...)
	if err != nil {
		return err
	}
	defer stopChild(cmd, log)

	d := &agentd{base: fmt.Sprintf("http://127.0.0.1:%d", port), client: newHTTPClient()}
	defer d.client.CloseIdleConnections()
	defer d.reportDropped(ctx, r)
	if err := d.waitReady(ctx, 60*time.Second); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	idle, err := readRSS(pid)
	if err != nil {
		return err
	}
	r.linef("  %s (%s) as child process %d, %d agents with 1 queue each over %d queues", opts.agentdBin, childVersion(opts.agentdBin), pid, len(agents), bulkQueueCount)
	r.linef("  RSS with the directory loaded, nobody logged in: %.1f MiB", idle)

	login := d.bulk(ctx, agents, routeLogin, "READY", opts.concurrency)
	defer func() {
		if err := d.logoutAll(ctx, sb, agents, opts.concurrency); err != nil {
			log.Error("logout after the memory scenario failed", "err", err)
		}
	}()
	afterLogin, err := readRSS(pid)
	if err != nil {
		return err
	}
	r.linef("  logins: %d in %s, %d errors", len(agents), login.elapsed.Round(time.Millisecond), login.errors)
	r.linef("  RSS right after all logins: %.1f MiB", afterLogin)
	if login.errors > 0 {
		return fmt.Errorf("%d of %d logins failed, first: %w", login.errors, len(agents), login.first)
	}
	if err := saveHeapProfile(ctx, d.client, debugAddr, opts.heapProfileDir, "memory-after-login.heap", r); err != nil {
		return err
	}

	settled, lowest, highest, err := settleRSS(ctx, pid, opts.memorySettle)
	if err != nil {
		return err
	}
	if err := saveHeapProfile(ctx, d.client, debugAddr, opts.heapProfileDir, "memory-settled.heap", r); err != nil {
		return err
	}
	r.linef("  RSS after %s idle: %.1f MiB (lowest reading %.1f MiB, highest %.1f MiB)", opts.memorySettle, settled, lowest, highest)
	r.compare(fmt.Sprintf("RSS MiB with %d agents logged in, after login", len(agents)), afterLogin, "%.1f", true, memoryTargetMiB)
	r.compare(fmt.Sprintf("RSS MiB with %d agents logged in, highest while idle", len(agents)), highest, "%.1f", true, memoryTargetMiB)
	r.compare(fmt.Sprintf("RSS MiB with %d agents logged in, settled", len(agents)), settled, "%.1f", true, memoryTargetMiB)
	r.ratio("settled RSS / RSS with nobody logged in", settled, idle, true, 0)
	return nil
}

// saveHeapProfile fetches a heap profile from agentd's debug listener at
// addr into dir/name. It does nothing when dir is empty.
func saveHeapProfile(ctx context.Context, client *http.Client, addr, dir, name string, r *report) error {
	if dir == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s from %s", resp.Status, addr)
	}
	f, err := createIn(dir, name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	r.linef("  heap profile written to %s", filepath.Join(dir, name))
	return nil
}

// settleRSS waits for duration, reading the RSS every sample interval, and
// returns the last, the lowest and the highest reading.
func settleRSS(ctx context.Context, pid int, duration time.Duration) (last, lowest, highest float64, err error) {
	deadline := time.Now().Add(duration)
	lowest = -1
	for {
		last, err = readRSS(pid)
		if err != nil {
			return 0, 0, 0, err
		}
		if lowest < 0 || last < lowest {
			lowest = last
		}
		highest = max(highest, last)
		wait := min(memorySampleInterval, time.Until(deadline))
		if wait <= 0 {
			return last, lowest, highest, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// readRSS returns VmRSS of the process in MiB.
func readRSS(pid int) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of process %d: %w", pid, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// startChild runs "agentd run" with the configuration at path and the
// variables env. The child gets no AGENTD_ variable of this environment,
// which would override its configuration, and logs only warnings and
// errors. The Go runtime
// settings GOGC, GOMEMLIMIT and GODEBUG are passed on, to study the
// collector's part in the figures.
func startChild(binary, path string, env ...string) (*exec.Cmd, error) {
	cmd := exec.Command(binary, "run", "-config", path)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "AGENTD_LOG_LEVEL=warn"}, env...)
	for _, name := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v, ok := os.LookupEnv(name); ok {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	return cmd, nil
}

// stopChild sends SIGTERM to the child agentd and waits for it to exit.
func stopChild(cmd *exec.Cmd, log *slog.Logger) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("agentd child exited with an error", "pid", cmd.Process.Pid, "err", err)
		}
	case <-time.After(30 * time.Second):
		log.Error("agentd child did not stop within 30 s after SIGTERM; killing it", "pid", cmd.Process.Pid)
		_ = cmd.Process.Kill() // Wait reports the outcome
		log.Warn("agentd child killed", "pid", cmd.Process.Pid, "err", <-done)
	}
}

// childVersion returns what "agentd version" prints for binary.
func childVersion(binary string) string {
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		return "version unknown: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}
