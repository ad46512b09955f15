// Package raft is source for the lock reader's tests: each "at:" comment
// marks a line a goroutine's frame may be at, and the test says which
// locks must be proven held there. It is never compiled.
package raft

import (
	"sync"
	"time"
)

type Raft struct {
	mu    sync.Mutex
	state sync.RWMutex
	ch    chan int
}

func (rf *Raft) sleepsHolding() {
	rf.mu.Lock()
	rf.ch = nil
	time.Sleep(10 * time.Millisecond) // at:sleepsHolding
	rf.mu.Unlock()
}

func (rf *Raft) deferred() {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	<-rf.ch // at:deferred
}

func (rf *Raft) released() {
	rf.mu.Lock()
	rf.ch = nil
	rf.mu.Unlock()
	time.Sleep(time.Millisecond) // at:released
}

func (rf *Raft) ticker() {
	for {
		time.Sleep(time.Millisecond) // at:tickerTop
		rf.mu.Lock()
		if rf.ch == nil {
			rf.mu.Unlock()
			continue
		}
		rf.ch <- 1 // at:tickerSend
		rf.mu.Unlock()
	}
}

func (rf *Raft) conditional(x bool) {
	if x {
		rf.mu.Lock()
	}
	time.Sleep(time.Millisecond) // at:conditional
	if x {
		rf.mu.Unlock()
	}
}

func (rf *Raft) maybeReleased(x bool) {
	rf.mu.Lock()
	if x {
		rf.mu.Unlock()
	}
	time.Sleep(time.Millisecond) // at:maybeReleased
}

func (rf *Raft) earlyReturn(x bool) {
	rf.mu.Lock()
	if x {
		rf.mu.Unlock()
		return
	}
	time.Sleep(time.Millisecond) // at:earlyReturn
	rf.mu.Unlock()
}

func (rf *Raft) loopReleases() {
	rf.mu.Lock()
	for i := 0; i < 3; i++ {
		time.Sleep(time.Millisecond) // at:loopReleases
		rf.mu.Unlock()
	}
}

func (rf *Raft) reader() {
	rf.state.RLock()
	select { // at:readerSelect
	case <-rf.ch:
	case <-time.After(time.Second):
	}
	rf.state.RUnlock()
}

func (rf *Raft) callsHelper() {
	rf.mu.Lock()
	rf.helper() // at:callsHelper
	rf.mu.Unlock()
}

func (rf *Raft) helper() {
	time.Sleep(time.Millisecond) // at:helper
}

func (rf *Raft) lockedByHelper() {
	rf.lock()
	time.Sleep(time.Millisecond) // at:lockedByHelper
	rf.mu.Unlock()
}

func (rf *Raft) lock() { rf.mu.Lock() }

func (rf *Raft) RequestVote(args int, reply *int) {
	rf.mu.Lock() // at:requestVote
	defer rf.mu.Unlock()
}

func Make() *Raft {
	rf := &Raft{}
	go func() {
		rf.mu.Lock()
		time.Sleep(time.Second) // at:closure
		rf.mu.Unlock()
	}()
	time.Sleep(time.Millisecond) // at:make
	return rf
}

func MakeLocked() *Raft {
	rf := &Raft{}
	rf.mu.Lock()
	go rf.ticker() // at:goLocked
	rf.mu.Unlock()
	return rf
}
