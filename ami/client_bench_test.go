package ami

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchClient runs a Client against the fake server until the benchmark
// ends.
func benchClient(b *testing.B) *Client {
	b.Helper()
	srv := newFakeAMI(b)
	cfg := testConfig(srv, &logBuffer{})
	c := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	srv.waitLogin(b)
	for !c.Connected() {
		time.Sleep(time.Millisecond)
	}
	return c
}

// BenchmarkActionConcurrent sends n QueueAdd actions from n goroutines at
// once, as agent.Service does for an agent in n queues, and waits for all
// responses. One iteration is one such batch.
func BenchmarkActionConcurrent(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			c := benchClient(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						msg := NewAction(ActionQueueAdd, "Queue", "bench-"+strconv.Itoa(i), "Interface", "Local/b1@agent-phones/n",
							"Penalty", "0", "Paused", "false", "MemberName", "bench1_Bench-1")
						if _, err := c.Action(ctx, msg); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}
