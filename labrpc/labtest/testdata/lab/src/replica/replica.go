// Package replica is this toy lab's "Raft": replica 0 is the leader and
// copies each command to the others; a command is committed once a
// majority holds it.
package replica

import (
	"sync"
	"sync/atomic"
	"time"

	"6.5840/labrpc"
)

// Replica is one member of the group.
type Replica struct {
	mu      sync.Mutex
	peers   []*labrpc.ClientEnd
	me      int
	log     []string
	applyCh chan string
	dead    int32

	// SleepUnderLock makes the heartbeat sleep while holding mu, a
	// classic student bug.
	SleepUnderLock atomic.Bool
}

// AppendArgs carries one log entry.
type AppendArgs struct {
	Index   int
	Command string
}

// AppendReply acknowledges it.
type AppendReply struct{ OK bool }

// Make starts a replica; committed commands are sent on applyCh.
func Make(peers []*labrpc.ClientEnd, me int, applyCh chan string) *Replica {
	r := &Replica{peers: peers, me: me, applyCh: applyCh}
	go r.heartbeat()
	return r
}

// Append replicates cmd if this replica leads; ok is false otherwise or if
// no majority answered.
func (r *Replica) Append(cmd string) (index int, ok bool) {
	if r.me != 0 || r.killed() {
		return 0, false
	}
	r.mu.Lock()
	r.log = append(r.log, cmd)
	index = len(r.log)
	r.mu.Unlock()
	acks := 1
	for i, p := range r.peers {
		if i == r.me {
			continue
		}
		var reply AppendReply
		if p.Call("Replica.AppendEntry", AppendArgs{Index: index, Command: cmd}, &reply) && reply.OK {
			acks++
		}
	}
	if acks*2 <= len(r.peers) {
		return index, false
	}
	go func() { r.applyCh <- cmd }() // blocks for good once nobody reads: left behind after Kill
	return index, true
}

// AppendEntry stores an entry from the leader.
func (r *Replica) AppendEntry(args AppendArgs, reply *AppendReply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.log) < args.Index {
		r.log = append(r.log, "")
	}
	r.log[args.Index-1] = args.Command
	reply.OK = true
}

// Heartbeat is a no-op RPC the leader sends every 50 ms.
func (r *Replica) Heartbeat(args int, reply *int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*reply = len(r.log)
}

func (r *Replica) heartbeat() {
	for !r.killed() {
		if r.SleepUnderLock.Load() {
			r.mu.Lock()
			time.Sleep(20 * time.Millisecond)
			r.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
		if r.me == 0 {
			for i, p := range r.peers {
				if i != r.me {
					var n int
					go p.Call("Replica.Heartbeat", 0, &n)
				}
			}
		}
	}
}

// Kill stops the replica's heartbeat.
func (r *Replica) Kill() { atomic.StoreInt32(&r.dead, 1) }

func (r *Replica) killed() bool { return atomic.LoadInt32(&r.dead) == 1 }
