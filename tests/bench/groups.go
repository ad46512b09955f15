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

// Group and case names the report's goals refer to.
const (
	GroupSequential  = "TCP sequential"
	GroupOneClient   = "TCP 64 goroutines, one client"
	GroupManyClients = "TCP 64 clients, one caller each"

	CaseNetRPC      = "net/rpc"
	CaseNoRetry     = "semrpc NoRetry"
	CaseAtLeastOnce = "semrpc AtLeastOnce"
	CaseAtMostOnce  = "semrpc AtMostOnce"
	CaseExactlyOnce = "semrpc ExactlyOnce (bbolt, fsync)"
	CasePingPong    = "floor: raw TCP ping-pong, 64 B"
	CaseBatchedPing = "floor: raw TCP, 64 × 64 B per write"
	CaseManyPing    = "floor: raw TCP ping-pong, 64 connections"
	CaseFsync       = "floor: 4 KiB write + fdatasync"
)

// Groups returns every benchmark group of the report, in print order.
func Groups() []Group {
	policies := []struct {
		name string
		p    semantics.Policy
	}{
		{CaseNoRetry, semantics.NoRetry()},
		{CaseAtLeastOnce, semantics.AtLeastOnce()},
		{CaseAtMostOnce, semantics.AtMostOnce()},
	}
	// tcp is one comparison: clients clients, driven by drive.
	tcp := func(name string, clients int, drive func(*testing.B, *Server), floors ...Case) Group {
		g := Group{Name: name, Baseline: 0}
		g.Cases = append(g.Cases, Case{CaseNetRPC, func(b *testing.B) {
			s := StartNetRPCClients(b, clients)
			defer s.Stop()
			drive(b, s)
		}})
		for _, p := range policies {
			g.Cases = append(g.Cases, Case{p.name, func(b *testing.B) {
				s := StartSemrpcClients(b, p.p, clients)
				defer s.Stop()
				drive(b, s)
			}})
		}
		g.Cases = append(g.Cases, Case{CaseExactlyOnce, func(b *testing.B) {
			s := StartExactlyOnceClients(b, clients)
			defer s.Stop()
			drive(b, s)
		}})
		g.Cases = append(g.Cases, floors...)
		return g
	}
	groups := []Group{
		tcp(GroupSequential, 1, Sequential, Case{CasePingPong, PingPong}, Case{CaseFsync, Fsync}),
		tcp(GroupOneClient, 1, func(b *testing.B, s *Server) { Parallel(b, s, 64) }, Case{CaseBatchedPing, BatchedPingPong}),
		tcp(GroupManyClients, 64, func(b *testing.B, s *Server) { Parallel(b, s, 64) }, Case{CaseManyPing, ManyPingPong}),
	}
	groups = append(groups, pgGroups()...)
	return append(groups, extraGroups()...)
}
