package labrpc

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

// Virtual time needs a synctest bubble, which only a test (not a
// benchmark) can make, so BenchmarkLabrpcVirtual times a child process
// that runs TestVirtualCallsChild: b.N RequestVote calls from one caller
// inside a bubble, each message taking the given virtual latency. The
// child's start-up (a few milliseconds) is measured once and subtracted.

const (
	virtualCallsEnv   = "LABRPC_VIRTUAL_CALLS"
	virtualLatencyEnv = "LABRPC_VIRTUAL_LATENCY"
)

// TestVirtualCallsChild is BenchmarkLabrpcVirtual's child; it runs only
// when the benchmark starts it.
func TestVirtualCallsChild(t *testing.T) {
	calls, err := strconv.Atoi(os.Getenv(virtualCallsEnv))
	if err != nil {
		t.Skip("runs only as BenchmarkLabrpcVirtual's child")
	}
	latency, err := time.ParseDuration(os.Getenv(virtualLatencyEnv))
	if err != nil {
		t.Fatalf("%s: %v", virtualLatencyEnv, err)
	}
	synctest.Test(t, func(t *testing.T) {
		net := MakeNetworkSeed(1)
		defer net.Cleanup()
		net.SetLatency(latency)
		srv := MakeServer()
		srv.AddService(MakeService(&Voter{}))
		net.AddServer("server", srv)
		end := net.MakeEnd(0)
		net.Connect(0, "server")
		net.Enable(0, true)
		start := time.Now()
		for i := 0; i < calls; i++ {
			var reply VoteReply
			if !end.Call("Voter.RequestVote", &VoteArgs{Term: i, LastLogIndex: 7, LastLogTerm: 3}, &reply) || reply.Term != i {
				t.Fatalf("call %d failed", i)
			}
		}
		if got, want := time.Since(start), time.Duration(calls)*2*latency; got != want {
			t.Errorf("%d calls took %v of virtual time, want %v", calls, got, want)
		}
	})
}

func runVirtualChild(b *testing.B, calls int, latency time.Duration) time.Duration {
	cmd := exec.Command(os.Args[0], "-test.run=^TestVirtualCallsChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), virtualCallsEnv+"="+strconv.Itoa(calls), virtualLatencyEnv+"="+latency.String())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("child: %v\n%s", err, out)
	}
	return time.Since(start)
}

// BenchmarkLabrpcVirtual measures calls per real second inside a synctest
// bubble, beside BenchmarkClassicStyle and BenchmarkLabrpc in real time.
func BenchmarkLabrpcVirtual(b *testing.B) {
	for _, latency := range []time.Duration{0, time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%v", latency), func(b *testing.B) {
			b.StopTimer()
			startup := runVirtualChild(b, 0, latency)
			b.StartTimer()
			d := runVirtualChild(b, b.N, latency)
			b.StopTimer()
			real := max(d-startup, time.Microsecond)
			b.ReportMetric(float64(b.N)/real.Seconds(), "calls/s")
			b.ReportMetric(float64(real.Nanoseconds())/float64(b.N), "real-ns/call")
		})
	}
}
