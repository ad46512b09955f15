// Package raft is this toy lab's "Raft": the lowest-numbered server that
// hears from no lower-numbered one leads, sends heartbeats, and copies
// each command to the others; a command is committed once a majority
// holds it.
package raft

import (
	"sync"
	"sync/atomic"
	"time"

	"6.5840/labrpc"
)

// Raft is one server's state.
type Raft struct {
	mu        sync.Mutex // protects the fields below
	peers     []*labrpc.ClientEnd
	me        int
	log       []int
	lastHeard time.Time // of a lower-numbered leader's heartbeat
	dead      atomic.Bool
}

// HeartbeatArgs is a leader's heartbeat.
type HeartbeatArgs struct{ Leader int }

// HeartbeatReply acknowledges it.
type HeartbeatReply struct{ LogLen int }

// AppendArgs carries one log entry.
type AppendArgs struct {
	Index   int
	Command int
}

// AppendReply acknowledges it.
type AppendReply struct{ OK bool }

// Make starts server me.
func Make(peers []*labrpc.ClientEnd, me int) *Raft {
	rf := &Raft{peers: peers, me: me, lastHeard: time.Now()}
	go rf.ticker()
	return rf
}

// GetState reports whether this server believes it leads.
func (rf *Raft) GetState() (isLeader bool) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return rf.leading()
}

func (rf *Raft) leading() bool {
	return rf.me == 0 || time.Since(rf.lastHeard) > 300*time.Millisecond
}

// Start replicates command if this server leads.
func (rf *Raft) Start(command int) (index int, isLeader bool) {
	rf.mu.Lock()
	if !rf.leading() {
		rf.mu.Unlock()
		return 0, false
	}
	rf.log = append(rf.log, command)
	index = len(rf.log)
	rf.mu.Unlock()
	for i, p := range rf.peers {
		if i != rf.me {
			var reply AppendReply
			p.Call("Raft.AppendEntry", AppendArgs{Index: index, Command: command}, &reply)
		}
	}
	return index, true
}

// Committed returns the command at index (from 1) if this server holds it.
func (rf *Raft) Committed(index int) (int, bool) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if index > len(rf.log) {
		return 0, false
	}
	return rf.log[index-1], true
}

// Heartbeat is a leader's heartbeat.
func (rf *Raft) Heartbeat(args HeartbeatArgs, reply *HeartbeatReply) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if args.Leader < rf.me {
		rf.lastHeard = time.Now()
	}
	reply.LogLen = len(rf.log)
}

// AppendEntry stores an entry from the leader.
func (rf *Raft) AppendEntry(args AppendArgs, reply *AppendReply) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for len(rf.log) < args.Index {
		rf.log = append(rf.log, 0)
	}
	rf.log[args.Index-1] = args.Command
	reply.OK = true
}

func (rf *Raft) ticker() {
	for !rf.dead.Load() {
		time.Sleep(50 * time.Millisecond)
		if !rf.GetState() {
			continue
		}
		for i, p := range rf.peers {
			if i != rf.me {
				go func(p *labrpc.ClientEnd) {
					var reply HeartbeatReply
					p.Call("Raft.Heartbeat", HeartbeatArgs{Leader: rf.me}, &reply)
				}(p)
			}
		}
	}
}

// Kill stops the server's ticker.
func (rf *Raft) Kill() { rf.dead.Store(true) }
