package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/semrpc/semrpc/examples/kv/kvservice/kvcheck"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// child is a kv server running in a child process (this test binary,
// re-executed; see TestMain).
type child struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan struct{} // closed when the stdout reader is done
}

// startChild starts "kv server -addr addr -data dir" in a child process and
// waits until it serves.
func startChild(t *testing.T, addr, dir string) *child {
	t.Helper()
	return startServerProcess(t, "-addr", addr, "-data", dir)
}

// startServerProcess starts "kv server" with args in a child process and waits
// until it serves.
func startServerProcess(t *testing.T, args ...string) *child {
	t.Helper()
	return startServerProcessEnv(t, nil, args...)
}

// startServerProcessEnv is startServerProcess with env added to the
// server's environment.
func startServerProcessEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--", "server"}, args...)...)
	cmd.Env = append(childEnviron(), env...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: logs, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case c.addr = <-ready:
		return c
	case <-c.done:
	case <-time.After(20 * time.Second):
	}
	c.kill()
	t.Fatalf("kv server did not start: %s", logs.String())
	return nil
}

// childEnviron is the environment of a child process: this one's, with
// childEnv set and, under -race, no second of sleep at exit
// (atexit_sleep_ms defaults to 1000), which would make each short-lived
// client take a second.
func childEnviron() []string {
	return append(os.Environ(), childEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// kill kills the child with SIGKILL and reaps it.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	<-c.done
}

// TestSIGKILLExactlyOnce kills a durable kv server with SIGKILL at random
// (seeded) moments and restarts it on the same address and data directory,
// while clients append unique tokens exactly-once. Every token must end up
// in the value exactly once, in its client's order, and the history must be
// linearizable.
func TestSIGKILLExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	const (
		clients = 3
		kills   = 8
		key     = "log"
	)
	seed := uint64(1)
	if s := os.Getenv("SEMRPC_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6b76))
	t.Logf("seed %d (set SEMRPC_SEED to change)", seed)

	dir := t.TempDir()
	srv := startChild(t, "127.0.0.1:0", dir)
	addr := srv.addr
	var srvMu sync.Mutex // protects srv
	t.Cleanup(func() {
		srvMu.Lock()
		defer srvMu.Unlock()
		if srv != nil {
			srv.kill()
		}
	})

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		histMu  sync.Mutex // protects history
		history []porcupine.Operation
	)
	add := func(op porcupine.Operation) {
		histMu.Lock()
		history = append(history, op)
		histMu.Unlock()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	policy := semantics.ExactlyOnce(semantics.Backoff(5*time.Millisecond, 50*time.Millisecond))
	var (
		wg       sync.WaitGroup
		appended [clients]int // tokens each client appended
		retries  [clients]uint64
	)
	for c := 0; c < clients; c++ {
		rc, err := rpc.Dial(ctx, "tcp", addr, rpc.WithRedialBackoff(2*time.Millisecond, 20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		kv := kvservice.NewClient(rc).WithWritePolicy(policy)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					retries[c] = rc.Stats().Run.Retries
					return
				default:
				}
				if i%5 == 4 {
					call := now()
					v, err := kv.Get(ctx, key)
					if err == nil { // a failed read says nothing
						add(porcupine.Operation{ClientId: c, Input: kvcheck.Input{Op: "get", Key: key}, Call: call, Output: kvcheck.Output{Value: v}, Return: now()})
					}
					continue
				}
				token := fmt.Sprintf("c%d.%d;", c, appended[c])
				in := kvcheck.Input{Op: "append", Key: key, Value: token}
				call := now()
				old, err := kv.Append(ctx, key, token)
				if err != nil {
					t.Errorf("client %d: exactly-once append %s failed: %v", c, token, err)
					add(porcupine.Operation{ClientId: c, Input: in, Call: call, Output: kvcheck.Output{Unknown: true}, Return: math.MaxInt64})
					return
				}
				add(porcupine.Operation{ClientId: c, Input: in, Call: call, Output: kvcheck.Output{Value: old}, Return: now()})
				appended[c]++
			}
		}()
	}

	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	defer func() { // also when a restart fails the test
		cancel()
		halt()
		wg.Wait()
	}()

	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		srvMu.Lock()
		srv.kill()
		srv = nil
		srvMu.Unlock()
		time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
		next := startChild(t, addr, dir)
		srvMu.Lock()
		srv = next
		srvMu.Unlock()
	}
	time.Sleep(100 * time.Millisecond) // calls after the last restart
	halt()
	wg.Wait()
	if t.Failed() {
		srvMu.Lock()
		t.Logf("server log: %s", srv.logs.String())
		srvMu.Unlock()
	}

	// The final value, read on a fresh connection.
	rc, err := rpc.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	final, err := kvservice.NewClient(rc).Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	add(porcupine.Operation{ClientId: clients, Input: kvcheck.Input{Op: "get", Key: key}, Call: now(), Output: kvcheck.Output{Value: final}, Return: now()})

	next := make([]int, clients)
	for _, tok := range strings.Split(strings.TrimSuffix(final, ";"), ";") {
		var c, i int
		if _, err := fmt.Sscanf(tok, "c%d.%d", &c, &i); err != nil || c < 0 || c >= clients {
			t.Fatalf("bad token %q in %q", tok, final)
		}
		if i != next[c] {
			t.Fatalf("client %d: token %d where %d was due: a token is duplicated, lost or out of order", c, i, next[c])
		}
		next[c]++
	}
	var total int
	var totalRetries uint64
	for c := 0; c < clients; c++ {
		if next[c] != appended[c] {
			t.Errorf("client %d appended %d tokens, the value holds %d", c, appended[c], next[c])
		}
		total += appended[c]
		totalRetries += retries[c]
	}
	if totalRetries == 0 {
		t.Errorf("no call was retried: the kills never hit a call")
	}
	res, vis, err := kvcheck.Check(history, 10*time.Second)
	if res != porcupine.Ok {
		t.Fatalf("history of %d operations is %s; visualisation: %q (%v)", len(history), res, vis, err)
	}
	t.Logf("%d kills survived; %d appends from %d clients, %d retries, %d operations checked; %v",
		kills, total, clients, totalRetries, len(history), time.Since(start).Round(time.Millisecond))
}

// runChildCLI runs the kv command with args in a child process (this test
// binary, re-executed; see TestMain), as a user's shell would, and returns
// its exit status and output.
func runChildCLI(args ...string) (code int, stdout, stderr string) {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = childEnviron()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		code = -1
	}
	return code, out.String(), errb.String()
}

// TestSIGKILLCLIAppendsExactlyOnce is a user's session: "kv put" then 120
// "kv append" processes, one per unique token, one after the other, each
// with the default -timeout, and a "kv get" every tenth, while the durable
// server is SIGKILLed and restarted every 0.3–1 s (random, seeded). No
// invocation may fail; each append must print the value before it, each get
// the value so far, and the final value must be the 120 tokens in order,
// each once.
func TestSIGKILLCLIAppendsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	const (
		appends = 120
		key     = "log"
	)
	seed := uint64(1)
	if s := os.Getenv("SEMRPC_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 0x636c69))
	t.Logf("seed %d (set SEMRPC_SEED to change)", seed)

	dir := t.TempDir()
	srv := startChild(t, "127.0.0.1:0", dir)
	addr := srv.addr
	defer func() { srv.kill() }()

	start := time.Now()
	var (
		want    strings.Builder // the value the user expects
		spans   [][2]time.Time  // when each invocation began and ended
		killsAt []time.Time     // when each kill was sent
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		invoke := func(wantOut string, args ...string) bool {
			args = append([]string{"-addr", addr}, args...)
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

	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(300+rng.IntN(700)) * time.Millisecond):
			killsAt = append(killsAt, time.Now())
			srv.kill()
			srv = startChild(t, addr, dir)
		}
	}
	<-done
	if t.Failed() {
		t.Logf("server log: %s", srv.logs.String())
		return
	}
	code, final, stderr := runChildCLI("-addr", addr, "get", key)
	if code != 0 {
		t.Fatalf("final get: exit %d: %s", code, stderr)
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
		t.Fatalf("final value %q, want the %d tokens in order, each once", final, appends)
	}
	// The invocations running when a kill was sent, and how long they took.
	var hit int
	var longest time.Duration
	for _, sp := range spans {
		for _, k := range killsAt {
			if sp[0].Before(k) && k.Before(sp[1]) {
				hit++
				longest = max(longest, sp[1].Sub(sp[0]))
				break
			}
		}
	}
	if hit == 0 {
		t.Fatalf("none of the %d kills hit a running invocation", len(killsAt))
	}
	t.Logf("%d appends by %d processes survived %d SIGKILLs, %d of them mid-invocation (the longest took %v); %v",
		appends, len(spans)+1, len(killsAt), hit, longest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
