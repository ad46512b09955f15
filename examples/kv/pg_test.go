package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostgresReplicasSIGKILLCLIAppendsExactlyOnce is TestSIGKILLCLIAppendsExactlyOnce
// across replicas: three kv server processes on one PostgreSQL database,
// and "kv -addrs A,B,C append" processes (a cluster client, exactly-once),
// one after the other, while the servers are SIGKILLed in turn (one every
// 0.15–0.5 s, random, seeded) and restarted on their address after up to
// 300 ms. No invocation may fail, each must print the value before its
// append, and the final value must be every token once, in order.
//
// What it needs of the cluster client: a write whose server dies after it
// may have run must be finished exactly once, by that server once it is
// back (it reads the record from the database), or by another server of
// the domain (which takes the session over and answers from the record or
// runs the write once).
func TestPostgresReplicasSIGKILLCLIAppendsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	const (
		replicas = 3
		key      = "log"
	)
	const appends = 120
	seed := uint64(1)
	if s := os.Getenv("SEMRPC_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 0x7067))
	t.Logf("seed %d (set SEMRPC_SEED to change)", seed)

	url := pg.NewDatabase(t)
	servers := make([]*child, replicas)
	addrs := make([]string, replicas)
	for i := range servers {
		servers[i] = startServerProcess(t, "-addr", "127.0.0.1:0", "-pg", url)
		addrs[i] = servers[i].addr
	}
	defer func() {
		for _, s := range servers {
			s.kill()
		}
	}()
	cluster := strings.Join(addrs, ",")

	start := time.Now()
	var (
		want    strings.Builder
		spans   [][2]time.Time // when each invocation began and ended
		killsAt []time.Time
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		invoke := func(wantOut string, args ...string) bool {
			args = append([]string{"-addrs", cluster}, args...)
			began := time.Now()
			code, stdout, stderr := runChildCLI(args...)
			spans = append(spans, [2]time.Time{began, time.Now()})
			if code != 0 || stdout != wantOut {
				t.Errorf("kv %q: exit %d, stdout %q (want %q), stderr %q", args, code, stdout, wantOut, stderr)
				return false
			}
			return true
		}
		if !invoke("OK\n", "put", key, "") {
			return
		}
		for i := 0; i < appends; i++ {
			token := fmt.Sprintf("t%03d;", i)
			if !invoke(want.String()+"\n", "append", key, token) {
				return
			}
			want.WriteString(token)
			if i%10 == 9 && !invoke(want.String()+"\n", "get", key) {
				return
			}
		}
	}()

	kills := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(150+rng.IntN(350)) * time.Millisecond):
			i := kills % replicas
			killsAt = append(killsAt, time.Now())
			servers[i].kill()
			kills++
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			servers[i] = startServerProcess(t, "-addr", addrs[i], "-pg", url)
		}
	}
	<-done
	if t.Failed() {
		for i, s := range servers {
			t.Logf("server %d log: %s", i, s.logs.String())
		}
		return
	}
	for _, addr := range addrs { // every replica sees the same value
		code, final, stderr := runChildCLI("-addr", addr, "get", key)
		if code != 0 {
			t.Fatalf("final get from %s: exit %d: %s", addr, code, stderr)
		}
		final = strings.TrimSuffix(final, "\n")
		if final != want.String() {
			seen := make(map[string]int)
			for _, tok := range strings.SplitAfter(final, ";") {
				seen[tok]++
			}
			for i := 0; i < appends; i++ {
				if tok := fmt.Sprintf("t%03d;", i); seen[tok] != 1 {
					t.Errorf("token %s is in the value %d times", tok, seen[tok])
				}
			}
			t.Fatalf("final value from %s %q, want the %d tokens in order, each once", addr, final, appends)
		}
	}
	hit := 0
	for _, sp := range spans {
		for _, k := range killsAt {
			if sp[0].Before(k) && k.Before(sp[1]) {
				hit++
				break
			}
		}
	}
	if hit == 0 {
		t.Fatalf("none of the %d kills hit a running invocation", kills)
	}
	t.Logf("%d appends by %d processes over %d replicas survived %d SIGKILLs, %d of them mid-invocation; %v",
		appends, len(spans), replicas, kills, hit, time.Since(start).Round(time.Millisecond))
}

// TestPostgresReplicaKilledAfterTheWriteRanFinishesElsewhere is the
// replicas' promise at its sharpest: "kv -addrs A,B append" reaches A, the
// append runs there, A is SIGKILLed before it answers and never comes
// back, and the command still succeeds, once, on B: it prints the value
// before its append (the reply A's run recorded), and the token is in the
// value once. Commands that happen to go to B first are answered there and
// tried again with another token, until one is held on A.
func TestPostgresReplicaKilledAfterTheWriteRanFinishesElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	const key = "moved"
	url := pg.NewDatabase(t)
	a := startServerProcessEnv(t, []string{holdWritesEnv + "=1"}, "-addr", "127.0.0.1:0", "-pg", url)
	defer a.kill()
	b := startServerProcess(t, "-addr", "127.0.0.1:0", "-pg", url)
	defer b.kill()
	addrs := a.addr + "," + b.addr
	if code, _, stderr := runChildCLI("-addr", b.addr, "put", key, ""); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}

	var want strings.Builder
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatalf("20 appends, none went to A: %s", a.logs.String())
		}
		token := fmt.Sprintf("t%02d;", i)
		type result struct {
			code           int
			stdout, stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, stdout, stderr := runChildCLI("-addrs", addrs, "-timeout", "20s", "append", key, token)
			done <- result{code, stdout, stderr}
		}()
		var r result
		held := false
		deadline := time.After(20 * time.Second)
	wait:
		for {
			select {
			case r = <-done:
				break wait
			case <-time.After(20 * time.Millisecond):
				if !held && strings.Contains(a.logs.String(), "kv-test: holding the reply") {
					held = true
					a.kill() // SIGKILL, for good: the command must finish on B
				}
			case <-deadline:
				t.Fatalf("append %s did not end in 20 s; A: %s", token, a.logs.String())
			}
		}
		if r.code != 0 || r.stdout != want.String()+"\n" {
			t.Fatalf("kv append %s (held on A: %v): exit %d, stdout %q (want %q), stderr %q", token, held, r.code, r.stdout, want.String()+"\n", r.stderr)
		}
		want.WriteString(token)
		if held {
			t.Logf("append %s ran on A, A was killed, the command ended on B with A's reply", token)
			break
		}
	}
	code, final, stderr := runChildCLI("-addr", b.addr, "get", key)
	if code != 0 {
		t.Fatalf("final get: exit %d: %s", code, stderr)
	}
	if final != want.String()+"\n" {
		t.Fatalf("final value %q, want %q: every token once", final, want.String())
	}
}
