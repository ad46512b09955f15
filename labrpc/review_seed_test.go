package labrpc

import (
	"fmt"
	"math/rand"
	"testing"
)

// Lab harnesses name their ends with random strings; a run must replay
// from its seed all the same.
func TestSeedReplaysWithRandomEndNames(t *testing.T) {
	run := func(names *rand.Rand) string {
		net := MakeNetworkSeed(42)
		defer net.Cleanup()
		net.EnableTrace(true)
		net.Reliable(false)
		srv := MakeServer()
		srv.AddService(MakeService(&compatRaft{}))
		net.AddServer("s", srv)
		var fates []bool
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("end-%d", names.Int63())
			end := net.MakeEnd(name)
			net.Connect(name, "s")
			net.Enable(name, true)
			for j := 0; j < 40; j++ {
				var reply compatVoteReply
				fates = append(fates, end.Call("compatRaft.RequestVote", &compatVoteArgs{Term: j}, &reply))
			}
		}
		return fmt.Sprint(fates)
	}
	a := run(rand.New(rand.NewSource(1)))
	b := run(rand.New(rand.NewSource(2))) // other names, same seed, same order
	if a != b {
		t.Fatalf("same seed, same order of ends and calls, different names: fates differ\n%s\n%s", a, b)
	}
}
