package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/internal/bench/latency"
)

// report prints the figures as they are measured and keeps the checks
// against the targets for the summary at the end.
type report struct {
	w        io.Writer
	scenario string
	checks   []check
}

// check is one figure compared with its target.
type check struct {
	scenario, name string
	text           string
	met            bool
}

func newReport(w io.Writer) *report {
	return &report{w: w}
}

func (r *report) linef(format string, args ...any) {
	fmt.Fprintf(r.w, format+"\n", args...)
}

func (r *report) header(sb *sandbox) {
	r.linef("agentd-bench %s", time.Now().Format(time.RFC3339))
	r.linef("  machine   %s, %d CPUs, %s memory, Linux %s", cpuModel(), runtime.NumCPU(), memTotal(), readTrimmed("/proc/sys/kernel/osrelease"))
	r.linef("  load      %s (1, 5, 15 min) at start", loadAverage())
	r.linef("  asterisk  %s at %s", sb.version, sb.amiAddr)
	r.linef("  agentd    %s, in-process, ami.connections %d", daemon.Version(), max(sb.amiConnections, 1))
}

func (r *report) section(name string) {
	r.scenario = name
	r.linef("")
	r.linef("== %s  (load %s)", name, loadAverage())
}

// latency prints one line of latency percentiles.
func (r *report) latency(label string, s latency.Summary) {
	r.linef("  %-46s p50 %9s  p90 %9s  p99 %9s  max %9s  n=%d", label,
		latency.Format(s.P50), latency.Format(s.P90), latency.Format(s.P99), latency.Format(s.Max), s.Count)
}

// ratio prints a/b and records whether it meets the target: at most
// target when atMost, else at least target. A zero target records no
// check.
func (r *report) ratio(name string, a, b float64, atMost bool, target float64) {
	ratio := a / b
	if target == 0 {
		r.linef("  ratio %-40s %.2f", name, ratio)
		return
	}
	r.compare(name, ratio, "%.2f", atMost, target)
}

// compare prints a value with its target and records the check.
func (r *report) compare(name string, value float64, format string, atMost bool, target float64) {
	op, met := "≥", value >= target
	if atMost {
		op, met = "≤", value <= target
	}
	verdict := "MET"
	if !met {
		verdict = "MISSED"
	}
	text := fmt.Sprintf("%s "+format+" (target %s "+format+") %s", name, value, op, target, verdict)
	r.linef("  check %s", text)
	r.checks = append(r.checks, check{scenario: r.scenario, name: name, text: text, met: met})
}

// fail records a check that could not be evaluated, such as errors seen
// where none are allowed.
func (r *report) fail(name, text string) {
	r.linef("  check %s: %s MISSED", name, text)
	r.checks = append(r.checks, check{scenario: r.scenario, name: name, text: name + ": " + text + " MISSED"})
}

func (r *report) summary() {
	r.linef("")
	r.linef("== summary  (load %s at end)", loadAverage())
	for _, c := range r.checks {
		r.linef("  %-7s %s", c.scenario, c.text)
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if key, value, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

func loadAverage() string {
	fields := strings.Fields(readTrimmed("/proc/loadavg"))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}
