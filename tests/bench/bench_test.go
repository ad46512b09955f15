package bench

import (
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

func policies() []struct {
	name string
	p    semantics.Policy
} {
	return []struct {
		name string
		p    semantics.Policy
	}{
		{"NoRetry", semantics.NoRetry()},
		{"AtLeastOnce", semantics.AtLeastOnce()},
		{"AtMostOnce", semantics.AtMostOnce()},
	}
}

func BenchmarkSequential(b *testing.B) {
	b.Run("net-rpc", func(b *testing.B) {
		call, stop := StartNetRPC(b)
		defer stop()
		Sequential(b, call)
	})
	for _, p := range policies() {
		b.Run(p.name, func(b *testing.B) {
			call, stop := StartSemrpc(b, p.p)
			defer stop()
			Sequential(b, call)
		})
	}
}

func BenchmarkParallel64(b *testing.B) {
	b.Run("net-rpc", func(b *testing.B) {
		call, stop := StartNetRPC(b)
		defer stop()
		Parallel(b, call, 64)
	})
	for _, p := range policies() {
		b.Run(p.name, func(b *testing.B) {
			call, stop := StartSemrpc(b, p.p)
			defer stop()
			Parallel(b, call, 64)
		})
	}
}
