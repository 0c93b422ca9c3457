package events

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkCommitEmbedded measures Commit against the embedded server: one
// key-value put and one publish, both acknowledged.
func BenchmarkCommitEmbedded(b *testing.B) {
	log, _ := newTestLogger()
	cfg := Config{Node: "bench", DataDir: b.TempDir(), Embedded: EmbeddedConfig{DontListen: true}}
	s, err := Open(context.Background(), cfg, log)
	require.NoError(b, err)
	defer func() { require.NoError(b, s.Close(context.Background())) }()

	a := newSimAgent("1001")
	ctx := context.Background()
	for b.Loop() {
		if err := s.Commit(ctx, a.next()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutboxAppend measures one synced append to the outbox, the cost
// of a commit while NATS is unreachable.
func BenchmarkOutboxAppend(b *testing.B) {
	log, _ := newTestLogger()
	o, err := openOutbox(b.TempDir(), 1<<30, 1<<40, log)
	require.NoError(b, err)
	defer func() { _ = o.close() }()

	rec, err := (&Store{cfg: Config{Node: "bench"}}).newRecord(newSimAgent("1001").login())
	require.NoError(b, err)
	for b.Loop() {
		if err := o.append(rec, false); err != nil {
			b.Fatal(err)
		}
	}
}
