package raft

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestInitialElection3A(t *testing.T) {
	ts := makeTest(t, 3, true)
	defer ts.cleanup()
	ts.Begin("Test (3A): initial election")
	ts.checkOneLeader()
	ts.End()
}

func TestReElection3A(t *testing.T) {
	ts := makeTest(t, 3, true)
	defer ts.cleanup()
	ts.Begin("Test (3A): election after network failure")
	leader := ts.checkOneLeader()
	ts.Disconnect(leader)
	ts.checkOneLeader()
	ts.Connect(leader)
	if l := ts.checkOneLeader(); l != leader {
		t.Fatalf("leader %d after %d came back, want %d", l, leader, leader)
	}
	ts.End()
}

func TestBasicAgree3B(t *testing.T) {
	ts := makeTest(t, 3, true)
	defer ts.cleanup()
	ts.Begin("Test (3B): basic agreement")
	leader := ts.checkOneLeader()
	for cmd := 100; cmd < 103; cmd++ {
		index, ok := ts.raft(leader).Start(cmd)
		if !ok {
			t.Fatalf("Start(%d) on leader %d refused", cmd, leader)
		}
		for i := 0; i < 3; i++ {
			if got, ok := ts.raft(i).Committed(index); !ok || got != cmd {
				msg := fmt.Sprintf("server %d holds %d at index %d, want %d", i, got, index, cmd)
				t.Fatalf(msg) // non-constant, as in the course's raft_test.go
			}
		}
	}
	ts.End()
}

// TestPorcupineIsTheLabsVersion checks that the test binary links the
// porcupine version this lab's go.mod pins, and uses it.
func TestPorcupineIsTheLabsVersion(t *testing.T) {
	// Test binaries carry no module versions; the source file's path does.
	file, _ := runtime.FuncForPC(reflect.ValueOf(porcupine.CheckOperations).Pointer()).FileLine(0)
	if !strings.Contains(file, "porcupine@v1.0.3") {
		t.Fatalf("porcupine linked from %s, the lab pins v1.0.3", file)
	}
	register := porcupine.Model{
		Init: func() interface{} { return 0 },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			if input.(int) >= 0 {
				return true, input // a write
			}
			return output == state, state // a read
		},
		Equal: func(a, b interface{}) bool { return a == b },
	}
	history := []porcupine.Operation{
		{ClientId: 0, Input: 5, Call: 0, Return: 10},
		{ClientId: 1, Input: -1, Output: 5, Call: 20, Return: 30},
	}
	if !porcupine.CheckOperations(register, history) {
		t.Fatal("a write then a read of it is not linearizable")
	}
}

// TestFailsOnRequest fails when LAB_FAIL=1, after 40 calls over an
// unreliable network whose fates it prints: with the same LABRPC_SEED,
// the same fates.
func TestFailsOnRequest(t *testing.T) {
	if os.Getenv("LAB_FAIL") != "1" {
		t.Skip("set LAB_FAIL=1 to make this test fail")
	}
	ts := makeTest(t, 3, false)
	defer ts.cleanup()
	var fates strings.Builder
	for i := 0; i < 40; i++ {
		var reply AppendReply
		if ts.raft(0).peers[1].Call("Raft.AppendEntry", AppendArgs{Index: 1, Command: i}, &reply) {
			fates.WriteByte('1')
		} else {
			fates.WriteByte('0')
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("failing on request: LABRPC_SEED=%s fates=%s", os.Getenv("LABRPC_SEED"), fates.String())
}
