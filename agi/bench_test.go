package agi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
)

const benchDirectory = `
pauses:
  - {id: "5", name: Lunch, type: recreational}
agents:
  - id: "1001"
    name: Ana Perez
    interface: PJSIP/1001
    queues: [{name: sales}, {name: support}]
`

func BenchmarkParseResponse(b *testing.B) {
	data := []byte("200 result=1 (Lunch break) endpos=1234\n")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseResponse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	data := []byte(asteriskHeader(ScriptAgentState, "1001"))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseHeader(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatCommand(b *testing.B) {
	args := []string{VarPauseName, `Lunch "long" break`}
	for b.Loop() {
		if _, err := formatCommand("SET VARIABLE", args); err != nil {
			b.Fatal(err)
		}
	}
}

// benchServer serves agent_state from an agent.Service whose agent 1001 is
// paused, so that every AGENT_STATE variable has a value. agent_state only
// reads the session, so the recording fakes see just this login and pause
// and add no work to the measured sessions.
func benchServer(b *testing.B) string {
	discard := slog.New(slog.DiscardHandler)
	svc := newService(b, benchDirectory, agenttest.NewQueues("sales", "support"), agenttest.NewDeviceStates(), agenttest.NewStore(), discard)
	ctx := context.Background()
	_, err := svc.Login(ctx, "1001", agent.SourceAPI)
	require.NoError(b, err)
	_, err = svc.Pause(ctx, "1001", "5", agent.SourceAPI)
	require.NoError(b, err)

	srv, err := NewServer(Config{Logger: discard}, svc)
	require.NoError(b, err)
	return startServer(b, srv)
}

// agentStateSession plays Asterisk for one agent_state session: it sends
// the header, replies "200 result=1" to every command and returns when the
// server closes the connection.
func agentStateSession(addr string, header []byte) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(header); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	ok := []byte("200 result=1\n")
	for {
		if _, err := br.ReadSlice('\n'); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if _, err := conn.Write(ok); err != nil {
			return err
		}
	}
}

// BenchmarkAgentStateSession measures whole agent_state sessions on
// loopback, one at a time: connect, header, one EXEC MSet round trip,
// close. It reports the latency percentiles of a session.
func BenchmarkAgentStateSession(b *testing.B) {
	addr := benchServer(b)
	header := []byte(asteriskHeader(ScriptAgentState, "1001"))
	latencies := make([]time.Duration, 0, 1024)

	for b.Loop() {
		start := time.Now()
		if err := agentStateSession(addr, header); err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(start))
	}
	reportLatencies(b, latencies)
}

// BenchmarkAgentStateSessionParallel measures agent_state sessions from
// GOMAXPROCS concurrent clients and reports sessions per second.
func BenchmarkAgentStateSessionParallel(b *testing.B) {
	addr := benchServer(b)
	header := []byte(asteriskHeader(ScriptAgentState, "1001"))
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, 1024)

	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 256)
		for pb.Next() {
			start := time.Now()
			if err := agentStateSession(addr, header); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	reportLatencies(b, latencies)
}

func reportLatencies(b *testing.B, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
