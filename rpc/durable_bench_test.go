package rpc

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

// benchClients is how many clients call at once in the semantics
// benchmarks, each with its own connection and session.
const benchClients = 64

// benchCalls runs Arith.Add under p from benchClients clients over TCP
// loopback and reports calls per second.
func benchCalls(b *testing.B, p semantics.Policy, opts ...Option) {
	_, _, addr, _ := startServer(b, opts...)
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var (
		mu      sync.Mutex
		clients []*Client
	)
	b.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := Dial(context.Background(), "tcp", addr, WithSemantics(p))
		if err != nil {
			b.Error(err)
			return
		}
		mu.Lock()
		clients = append(clients, c)
		mu.Unlock()
		ctx := context.Background()
		for pb.Next() {
			var reply int
			if err := c.Call(ctx, "Arith.Add", Args{A: 1, B: 2}, &reply); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkAtMostOnce: the in-memory dedup table.
func BenchmarkAtMostOnce(b *testing.B) {
	benchCalls(b, semantics.AtMostOnce())
}

// BenchmarkExactlyOnce: every call's completion record committed (with
// fsync) in a bbolt store before its reply; "batch" lets concurrent calls
// share a transaction and its fsync (group commit; with a delay named, the
// leader also waits that long for others to join), "nobatch" gives each
// call its own.
func BenchmarkExactlyOnce(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  boltstore.Config
	}{
		{"batch", boltstore.Config{}},
		{"batch-2ms", boltstore.Config{MaxBatchDelay: 2 * time.Millisecond}},
		{"batch-10ms", boltstore.Config{MaxBatchDelay: 10 * time.Millisecond}}, // bbolt's default
		{"nobatch", boltstore.Config{NoBatch: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), &bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			benchCalls(b, semantics.ExactlyOnce(), WithDurableStore(st))
		})
	}
}
