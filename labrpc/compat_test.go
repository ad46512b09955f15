package labrpc

import (
	"testing"

	"github.com/semrpc/semrpc/labrpc/labgob"
)

// The classic lab API, signature for signature: if any of these stops
// compiling, lab code that changed only its import path stops compiling too.
var (
	_ func() *Network                                         = MakeNetwork
	_ func(*Network)                                          = (*Network).Cleanup
	_ func(*Network, bool)                                    = (*Network).Reliable
	_ func(*Network) bool                                     = (*Network).IsReliable
	_ func(*Network, bool)                                    = (*Network).LongReordering
	_ func(*Network, bool)                                    = (*Network).LongDelays
	_ func(*Network) bool                                     = (*Network).IsLongDelays
	_ func(*Network, interface{}) *ClientEnd                  = (*Network).MakeEnd
	_ func(*Network, interface{})                             = (*Network).DeleteEnd
	_ func(*Network, interface{}, *Server)                    = (*Network).AddServer
	_ func(*Network, interface{})                             = (*Network).DeleteServer
	_ func(*Network, interface{}, interface{})                = (*Network).Connect
	_ func(*Network, interface{}, bool)                       = (*Network).Enable
	_ func(*Network, interface{}) int                         = (*Network).GetCount
	_ func(*Network) int                                      = (*Network).GetTotalCount
	_ func(*Network) int64                                    = (*Network).GetTotalBytes
	_ func() *Server                                          = MakeServer
	_ func(*Server, *Service)                                 = (*Server).AddService
	_ func(*Server) int                                       = (*Server).GetCount
	_ func(interface{}) *Service                              = MakeService
	_ func(*ClientEnd, string, interface{}, interface{}) bool = (*ClientEnd).Call

	_ func(value interface{})              = labgob.Register
	_ func(name string, value interface{}) = labgob.RegisterName
)

// A lab harness in the classic shape: servers and ends named by ints and
// strings, a service per server, counts.
type compatRaft struct{ votes int }

type compatVoteArgs struct{ Term, CandidateId int }
type compatVoteReply struct {
	Term        int
	VoteGranted bool
}

func (rf *compatRaft) RequestVote(args *compatVoteArgs, reply *compatVoteReply) {
	rf.votes++
	reply.Term = args.Term
	reply.VoteGranted = true
}

func TestClassicHarnessShape(t *testing.T) {
	net := MakeNetwork()
	defer net.Cleanup()
	const n = 3
	rafts := make([]*compatRaft, n)
	for i := 0; i < n; i++ {
		rafts[i] = &compatRaft{}
		srv := MakeServer()
		srv.AddService(MakeService(rafts[i]))
		net.AddServer(i, srv)
	}
	for from := 0; from < n; from++ {
		for to := 0; to < n; to++ {
			name := [2]int{from, to}
			end := net.MakeEnd(name)
			net.Connect(name, to)
			net.Enable(name, true)
			var reply compatVoteReply
			if !end.Call("compatRaft.RequestVote", &compatVoteArgs{Term: 7, CandidateId: from}, &reply) || !reply.VoteGranted || reply.Term != 7 {
				t.Fatalf("%d→%d: vote not granted", from, to)
			}
		}
	}
	for i := 0; i < n; i++ {
		if rafts[i].votes != n || net.GetCount(i) != n {
			t.Errorf("server %d: %d votes, count %d; want %d", i, rafts[i].votes, net.GetCount(i), n)
		}
	}
	if net.GetTotalCount() != n*n || net.GetTotalBytes() <= 0 {
		t.Errorf("totals: %d calls, %d bytes", net.GetTotalCount(), net.GetTotalBytes())
	}
}
