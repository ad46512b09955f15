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
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "server", "-addr", addr, "-data", dir)
	cmd.Env = append(os.Environ(), childEnv+"=1")
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
