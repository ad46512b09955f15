package raft

import (
	"fmt"
	"testing"
	"time"

	tester "6.5840/tester1"
)

// Test is one test's group, as the course's raft1/test.go builds it.
type Test struct {
	*tester.Config
	t *testing.T
	n int
}

func makeTest(t *testing.T, n int, reliable bool) *Test {
	return &Test{Config: tester.MakeConfig(t, n, reliable, startServer), t: t, n: n}
}

func (ts *Test) raft(i int) *Raft { return ts.Services(i)[0].(*Raft) }

func (ts *Test) cleanup() {
	for i := 0; i < ts.n; i++ {
		ts.raft(i).Kill()
	}
	ts.Cleanup()
}

// checkOneLeader waits for exactly one connected server to lead and
// returns it.
func (ts *Test) checkOneLeader() int {
	var leaders []int
	for iters := 0; iters < 10; iters++ {
		time.Sleep(500 * time.Millisecond)
		leaders = nil
		for i := 0; i < ts.n; i++ {
			if ts.IsConnected(i) && ts.raft(i).GetState() {
				leaders = append(leaders, i)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
	}
	// A non-constant format string, as in the course's files: vet flags it
	// only in a module whose go line is 1.24 or later.
	msg := fmt.Sprintf("expected one leader, got %v", leaders)
	ts.Fatalf(msg)
	return -1
}
