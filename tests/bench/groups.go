package bench

import (
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// Case is one benchmark of a Group.
type Case struct {
	Name string
	Run  func(b *testing.B)
}

// Group is a set of cases compared with each other; Baseline indexes the
// case the others are measured against (-1: none).
type Group struct {
	Name     string
	Baseline int
	Cases    []Case
}

// Groups returns every benchmark group of the report, in print order.
func Groups() []Group {
	policies := []struct {
		name string
		p    semantics.Policy
	}{
		{"semrpc NoRetry", semantics.NoRetry()},
		{"semrpc AtLeastOnce", semantics.AtLeastOnce()},
		{"semrpc AtMostOnce", semantics.AtMostOnce()},
	}
	tcp := func(name string, drive func(*testing.B, caller)) Group {
		g := Group{Name: name, Baseline: 0}
		g.Cases = append(g.Cases, Case{"net/rpc", func(b *testing.B) {
			call, stop := StartNetRPC(b)
			defer stop()
			drive(b, call)
		}})
		for _, p := range policies {
			p := p
			g.Cases = append(g.Cases, Case{p.name, func(b *testing.B) {
				call, stop := StartSemrpc(b, p.p)
				defer stop()
				drive(b, call)
			}})
		}
		g.Cases = append(g.Cases, Case{"semrpc ExactlyOnce (bbolt, fsync)", func(b *testing.B) {
			call, stop := StartExactlyOnce(b)
			defer stop()
			drive(b, call)
		}})
		return g
	}
	groups := []Group{
		tcp("TCP sequential", Sequential),
		tcp("TCP 64 goroutines", func(b *testing.B, c caller) { Parallel(b, c, 64) }),
	}
	return append(groups, extraGroups()...)
}
