package raft

import (
	"6.5840/labrpc"
	tester "6.5840/tester1"
)

// rfsrv is what the tester keeps of a server beside its Raft; like the
// course's, it has no RPC methods, and is registered as a service all the
// same.
type rfsrv struct {
	rf *Raft
}

// applier reads what the server applies; like the course's, it waits on
// applyCh for good once the server is killed (nothing closes it).
func (rs *rfsrv) applier(applyCh chan int) {
	for range applyCh {
	}
}

// Kill stops the server.
func (rs *rfsrv) Kill() { rs.rf.Kill() }

func startServer(ends []*labrpc.ClientEnd, me int) []tester.IService {
	rf := Make(ends, me)
	rs := &rfsrv{rf: rf}
	go rs.applier(make(chan int))
	return []tester.IService{rf, rs}
}
