package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
	"github.com/contactcenter/agentd/events"
	"github.com/contactcenter/agentd/internal/bench/latency"
)

// eventsTargetP99 is the target for the time from a state change to its
// arrival at a subscriber on loopback.
const eventsTargetP99 = 5 * time.Millisecond

// eventsTimeout bounds the wait for one event.
const eventsTimeout = 10 * time.Second

// eventsAgent is the agent whose changes the events scenario publishes.
const eventsAgent = "bench5001"

// runEvents measures the event path alone: agent.Service with in-memory
// fakes of Asterisk and the real events.Store, so a change is applied at
// once and the figure is the time to store and publish it. The subscriber
// is a plain NATS subscription on its own TCP connection.
func runEvents(ctx context.Context, opts options, r *report, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "agentd-bench-events-")
	if err != nil {
		return err
	}
	defer removeTemp(dir)

	port, err := freePort()
	if err != nil {
		return err
	}
	embedded := events.Config{Node: "agentd-bench", DataDir: filepath.Join(dir, "embedded"),
		Embedded: events.EmbeddedConfig{Host: "127.0.0.1", Port: port}}
	r.linef("  %d changes one at a time (pause, unpause) through agent.Service with Asterisk fakes; core NATS subscriber on loopback TCP", opts.eventsCount)
	err = profiled("events-embedded", func() error {
		return measureEvents(ctx, opts, r, log, "embedded", embedded, fmt.Sprintf("nats://127.0.0.1:%d", port))
	})
	if err != nil {
		return err
	}

	url, stop, err := startNATSServer(ctx, opts.natsServer, dir)
	if err != nil {
		return err
	}
	defer stop()
	external := events.Config{Node: "agentd-bench", DataDir: filepath.Join(dir, "external"), Conn: events.ConnConfig{URLs: []string{url}}}
	return profiled("events-external", func() error {
		return measureEvents(ctx, opts, r, log, "external nats-server", external, url)
	})
}

func measureEvents(ctx context.Context, opts options, r *report, log *slog.Logger, label string, cfg events.Config, url string) error {
	store, err := events.Open(ctx, cfg, log.With("component", "events"))
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(context.WithoutCancel(ctx)); err != nil {
			log.Warn("closing the events store failed", "err", err)
		}
	}()
	svc, err := newEventsService(store, log)
	if err != nil {
		return err
	}
	sub, received, err := subscribeEvents(url)
	if err != nil {
		return err
	}
	defer sub.Close()

	change, arrival, err := changeLatency(ctx, svc, received, opts.eventsCount)
	if err != nil {
		return err
	}
	ref, err := corePublishLatency(url, sub, opts.eventsCount)
	if err != nil {
		return err
	}

	r.latency(label+": change to subscriber", arrival)
	r.latency(label+": change call returned (store committed)", change)
	r.latency(label+": reference core publish to subscriber", ref)
	r.compare("events p99 ms, "+label, arrival.P99.Seconds()*1000, "%.2f", true, eventsTargetP99.Seconds()*1000)
	r.ratio("change p50 / core publish p50, "+label, float64(arrival.P50), float64(ref.P50), true, 0)
	return nil
}

// subscribeEvents connects a subscriber to every agent event.
func subscribeEvents(url string) (*nats.Conn, chan *nats.Msg, error) {
	sub, err := nats.Connect(url, nats.Name("agentd-bench subscriber"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect subscriber to %s: %w", url, err)
	}
	received := make(chan *nats.Msg, 1024)
	if _, err := sub.ChanSubscribe(events.DefaultSubjectPrefix+".>", received); err != nil {
		sub.Close()
		return nil, nil, err
	}
	if err := sub.Flush(); err != nil {
		sub.Close()
		return nil, nil, err
	}
	return sub, received, nil
}

// changeLatency logs the agent in, then pauses and unpauses it count
// times, one change at a time. It measures each change until the use case
// returned and until its event reached the subscriber.
func changeLatency(ctx context.Context, svc *agent.Service, received <-chan *nats.Msg, count int) (change, arrival latency.Summary, err error) {
	if _, err := svc.Login(ctx, eventsAgent, agent.SourceAPI); err != nil {
		return change, arrival, err
	}
	revision := uint64(1)
	if err := waitRevision(received, revision); err != nil {
		return change, arrival, err
	}

	var changeRec, arrivalRec latency.Recorder
	for i := range count {
		start := time.Now()
		if i%2 == 0 {
			_, err = svc.Pause(ctx, eventsAgent, pauseID, agent.SourceAPI)
		} else {
			_, err = svc.Unpause(ctx, eventsAgent, pauseID, agent.SourceAPI)
		}
		changeRec.Since(start)
		if err != nil {
			return change, arrival, err
		}
		revision++
		if err := waitRevision(received, revision); err != nil {
			return change, arrival, err
		}
		arrivalRec.Since(start)
	}
	return changeRec.Summary(), arrivalRec.Summary(), nil
}

func newEventsService(store *events.Store, log *slog.Logger) (*agent.Service, error) {
	dir, err := agent.ParseDirectory("events-directory.yaml", []byte(fmt.Sprintf(
		"pauses:\n  - {id: %q, name: Lunch, type: recreational}\nagents:\n  - {id: %s, name: Bench 5001, interface: %s, queues: [{name: %s}]}\n",
		pauseID, eventsAgent, memberInterface(5001), queueName(0))))
	if err != nil {
		return nil, err
	}
	return agent.NewService(agent.Config{
		Directory:    dir,
		Queues:       agenttest.NewQueues(queueName(0)),
		DeviceStates: agenttest.NewDeviceStates(),
		Store:        store,
		Logger:       log.With("component", "agent"),
	})
}

// waitRevision reads events until the one with the given revision.
func waitRevision(received <-chan *nats.Msg, revision uint64) error {
	timeout := time.After(eventsTimeout)
	for {
		select {
		case msg := <-received:
			var ev struct {
				AgentID  string `json:"agent_id"`
				Revision uint64 `json:"revision"`
			}
			if err := json.Unmarshal(msg.Data, &ev); err != nil {
				return fmt.Errorf("event on %s: %w", msg.Subject, err)
			}
			if ev.AgentID == eventsAgent && ev.Revision == revision {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("event with revision %d not received within %s", revision, eventsTimeout)
		}
	}
}

// corePublishLatency publishes count messages of an event's size from a
// connection of its own, one at a time, and measures each until the
// subscriber has it.
func corePublishLatency(url string, sub *nats.Conn, count int) (latency.Summary, error) {
	pub, err := nats.Connect(url, nats.Name("agentd-bench publisher"))
	if err != nil {
		return latency.Summary{}, err
	}
	defer pub.Close()
	const subject = "agentd-bench.reference"
	refs := make(chan *nats.Msg, 16)
	s, err := sub.ChanSubscribe(subject, refs)
	if err != nil {
		return latency.Summary{}, err
	}
	defer func() { _ = s.Unsubscribe() }() // the connection closes next
	if err := sub.Flush(); err != nil {
		return latency.Summary{}, err
	}

	payload := make([]byte, 600) // about the size of an event's JSON
	var rec latency.Recorder
	for range count {
		start := time.Now()
		if err := pub.Publish(subject, payload); err != nil {
			return latency.Summary{}, err
		}
		select {
		case <-refs:
			rec.Since(start)
		case <-time.After(eventsTimeout):
			return latency.Summary{}, fmt.Errorf("reference message not received within %s", eventsTimeout)
		}
	}
	return rec.Summary(), nil
}

// startNATSServer runs an external nats-server with JetStream on a free
// loopback port and returns its URL and a function that stops it. Without
// a binary it builds the nats-server version of go.mod.
func startNATSServer(ctx context.Context, binary, dir string) (string, func(), error) {
	if binary == "" {
		binary = filepath.Join(dir, "nats-server")
		build := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/nats-io/nats-server/v2")
		if out, err := build.CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("build nats-server: %w: %s", err, out)
		}
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(binary, "-js", "-sd", filepath.Join(dir, "nats-store"), "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait() // exits with a status after SIGTERM
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := nats.Connect(url)
		if err == nil {
			nc.Close()
			return url, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("nats-server at %s not reachable: %w", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
