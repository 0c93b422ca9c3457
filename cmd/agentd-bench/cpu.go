package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc on Linux
// (getconf CLK_TCK prints 100 on x86-64).
const clockTicks = 100

// cpuSnapshot is the CPU time used so far by the whole machine, by this
// process with its waited-for children, and by Asterisk.
type cpuSnapshot struct {
	at       time.Time
	machine  int64 // busy ticks of all CPUs
	self     int64 // ticks of this process and its waited-for children
	asterisk int64 // ticks of Asterisk, or -1 when its PID is unknown
}

// takeCPUSnapshot reads /proc. asteriskPID is 0 when unknown.
func takeCPUSnapshot(asteriskPID int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), machine: machineBusyTicks(), self: processTicks("self", true), asterisk: -1}
	if asteriskPID > 0 {
		s.asterisk = processTicks(strconv.Itoa(asteriskPID), false)
	}
	return s
}

// cpuUse describes the CPU time used between two snapshots, so a reader
// can tell a quiet machine from one shared with other work. The kernel
// charges processes and CPUs at different moments, so the time of other
// processes is only exact to about half a second and shows as 0 when the
// difference comes out negative.
func cpuUse(before, after cpuSnapshot) string {
	seconds := func(ticks int64) float64 { return float64(max(ticks, 0)) / clockTicks }
	machine := after.machine - before.machine
	self := after.self - before.self
	wall := after.at.Sub(before.at).Seconds()
	if before.asterisk < 0 || after.asterisk < 0 {
		return fmt.Sprintf("CPU seconds over %.0f s: this process %.1f, all other processes and interrupts %.1f", wall, seconds(self), seconds(machine-self))
	}
	asterisk := after.asterisk - before.asterisk
	return fmt.Sprintf("CPU seconds over %.0f s: this process %.1f, Asterisk %.1f, other processes and interrupts %.1f",
		wall, seconds(self), seconds(asterisk), seconds(machine-self-asterisk))
}

// machineBusyTicks returns the ticks all CPUs spent in user, nice, system,
// irq and softirq, from the first line of /proc/stat. A process is charged
// with part of the softirq time its loopback traffic causes, so leaving
// softirq out makes the other processes' share negative under the AGI
// load. Guest time is already in user, and steal went to other guests.
func machineBusyTicks() int64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	var busy int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait, steal, guest, guest_nice
			continue
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		busy += n
	}
	return busy
}

// processTicks returns utime+stime of /proc/<pid>/stat, plus cutime and
// cstime when children is set.
func processTicks(pid string, children bool) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0
	}
	// The command name in brackets may contain spaces; fields count from
	// the closing bracket, where field 3 (state) starts.
	_, rest, ok := strings.Cut(string(data), ") ")
	if !ok {
		return 0
	}
	fields := strings.Fields(rest)
	last := 13 // stime is field 15, fields[12]; cstime is field 17
	if children {
		last = 15
	}
	var ticks int64
	for _, f := range fields[11:last] {
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	return ticks
}

// sandboxAsteriskPID reads the PID file of the sandbox's Asterisk, or
// returns 0.
func sandboxAsteriskPID() int {
	root := os.Getenv("AGENTD_TEST_SANDBOX_ROOT")
	if root == "" {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(root, "run", "asterisk", "asterisk.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// Asterisk counts as idle below idleShare of one CPU over idleWindow.
// After the churn scenario Asterisk went on at about half a CPU for
// several seconds, which the next scenario then shared.
const (
	idleShare   = 0.05
	idleWindow  = time.Second
	idleMaxWait = 30 * time.Second
)

// waitAsteriskIdle waits until the sandbox's Asterisk uses less than
// idleShare of a CPU over idleWindow, for at most idleMaxWait, and
// returns how long it waited and whether Asterisk became idle.
func waitAsteriskIdle(ctx context.Context, asteriskPID int) (time.Duration, bool) {
	if asteriskPID == 0 {
		return 0, true
	}
	pid := strconv.Itoa(asteriskPID)
	start := time.Now()
	for time.Since(start) < idleMaxWait {
		before := processTicks(pid, false)
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(idleWindow):
		}
		used := float64(processTicks(pid, false)-before) / clockTicks / idleWindow.Seconds()
		if used < idleShare {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}
