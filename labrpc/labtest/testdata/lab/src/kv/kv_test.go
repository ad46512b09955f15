package kv

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Tests that sleep, as lab tests wait for elections and agreement.

func TestBasic(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	cfg.begin("basic puts and gets")
	ck := cfg.makeClient()
	time.Sleep(time.Second) // let the group settle
	for i := 0; i < 10; i++ {
		ck.Put("k", fmt.Sprint(i))
		if v := ck.Get("k"); v != fmt.Sprint(i) {
			t.Fatalf("Get(k) = %q, want %q", v, fmt.Sprint(i))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cfg.end()
}

func TestUnreliable(t *testing.T) {
	cfg := makeConfig(t, 3, true)
	defer cfg.cleanup()
	cfg.begin("puts over an unreliable network")
	var wg sync.WaitGroup
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			ck := cfg.makeClient()
			for i := 0; i < 10; i++ {
				ck.Put(fmt.Sprintf("c%d", c), fmt.Sprint(i))
				time.Sleep(100 * time.Millisecond)
			}
		}(c)
	}
	wg.Wait()
	ck := cfg.makeClient()
	for c := 0; c < 3; c++ {
		if v := ck.Get(fmt.Sprintf("c%d", c)); v != "9" {
			t.Fatalf("Get(c%d) = %q, want 9", c, v)
		}
	}
	cfg.end()
}

func TestRestart(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	cfg.begin("a follower restarts")
	ck := cfg.makeClient()
	ck.Put("a", "1")
	cfg.shutdownServer(2)
	time.Sleep(2 * time.Second)
	ck.Put("a", "2") // a majority of two still commits
	cfg.startServer(2)
	time.Sleep(time.Second)
	if v := ck.Get("a"); v != "2" {
		t.Fatalf("Get(a) = %q, want 2", v)
	}
	cfg.end()
}

// TestManyOps has clients do as many operations as fit in 5 seconds, with
// 8 MiB hashed on every Put: CPU-bound in real time.
func TestManyOps(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	for _, kv := range cfg.servers {
		kv.Checksum.Store(true)
	}
	cfg.begin("as many operations as fit in 5 seconds")
	var wg sync.WaitGroup
	ops := make([]int, 3)
	start := time.Now()
	for c := range ops {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			ck := cfg.makeClient()
			key := fmt.Sprintf("c%d", c)
			for time.Since(start) < 5*time.Second {
				ck.Put(key, fmt.Sprint(ops[c]))
				if v := ck.Get(key); v != fmt.Sprint(ops[c]) {
					t.Errorf("Get(%s) = %q, want %d", key, v, ops[c])
					return
				}
				ops[c]++
			}
		}(c)
	}
	wg.Wait()
	for c, n := range ops {
		if n == 0 {
			t.Fatalf("client %d did no operation", c)
		}
	}
	t.Logf("operations per client: %v", ops)
	cfg.end()
}

// TestKillLeavesGoroutines kills servers without stopping their snapshot
// goroutines, as many solutions do.
func TestKillLeavesGoroutines(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	cfg.begin("kill leaves goroutines blocked")
	ck := cfg.makeClient()
	ck.Put("x", "y")
	time.Sleep(500 * time.Millisecond)
	cfg.end()
}

// TestSleepHoldingLock runs with the leader's heartbeat sleeping while it
// holds its lock, while clients keep calling it.
func TestSleepHoldingLock(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	for _, kv := range cfg.servers {
		kv.Replica().SleepUnderLock.Store(true)
	}
	cfg.begin("heartbeat sleeps holding the lock")
	ck := cfg.makeClient()
	for i := 0; i < 20; i++ {
		ck.Put("k", fmt.Sprint(i))
		time.Sleep(50 * time.Millisecond)
	}
	if v := ck.Get("k"); v != "19" {
		t.Fatalf("Get(k) = %q, want 19", v)
	}
	cfg.end()
}

// TestRPCRate has clients read as fast as they can for 2 seconds and logs
// how many RPCs the network carried.
func TestRPCRate(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	cfg.begin("reads for 2 seconds")
	ck0 := cfg.makeClient()
	ck0.Put("k", "v")
	var wg sync.WaitGroup
	start, rpcs0 := time.Now(), cfg.net.GetTotalCount()
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ck := cfg.makeClient()
			for time.Since(start) < 2*time.Second {
				if v := ck.Get("k"); v != "v" {
					t.Errorf("Get(k) = %q, want v", v)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d RPCs in %v of the test's clock", cfg.net.GetTotalCount()-rpcs0, time.Since(start).Round(time.Millisecond))
	cfg.end()
}

// TestFailsOnRequest fails when LAB_FAIL=1, after some traffic: labtest
// then writes the network's timeline to a file and prints its path.
func TestFailsOnRequest(t *testing.T) {
	cfg := makeConfig(t, 3, false)
	defer cfg.cleanup()
	ck := cfg.makeClient()
	ck.Put("k", "v")
	if os.Getenv("LAB_FAIL") == "1" {
		t.Fatal("failing on request (LAB_FAIL=1)")
	}
}
