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

// kvInput and kvOutput are porcupine's view of one call.
type kvInput struct {
	op         string // "get" or "append"
	key, value string
}

type kvOutput struct {
	value   string // Get's value, Append's old value
	unknown bool   // the call gave up: it may or may not have taken effect
}

// kvModel is a register per key where Append returns the old value. An
// append whose outcome is unknown may have happened, at any point after its
// call, or not at all; it is given an infinite return time.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(kvInput), output.(kvOutput)
		switch in.op {
		case "get":
			return out.value == s, s
		default:
			return out.unknown || out.value == s, s + in.value
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		if out.unknown {
			return fmt.Sprintf("%s(%q, %q) -> ?", in.op, in.key, in.value)
		}
		return fmt.Sprintf("%s(%q, %q) -> %q", in.op, in.key, in.value, out.value)
	},
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
						add(porcupine.Operation{ClientId: c, Input: kvInput{op: "get", key: key}, Call: call, Output: kvOutput{value: v}, Return: now()})
					}
					continue
				}
				token := fmt.Sprintf("c%d.%d;", c, appended[c])
				in := kvInput{op: "append", key: key, value: token}
				call := now()
				old, err := kv.Append(ctx, key, token)
				if err != nil {
					t.Errorf("client %d: exactly-once append %s failed: %v", c, token, err)
					add(porcupine.Operation{ClientId: c, Input: in, Call: call, Output: kvOutput{unknown: true}, Return: math.MaxInt64})
					return
				}
				add(porcupine.Operation{ClientId: c, Input: in, Call: call, Output: kvOutput{value: old}, Return: now()})
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
	add(porcupine.Operation{ClientId: clients, Input: kvInput{op: "get", key: key}, Call: now(), Output: kvOutput{value: final}, Return: now()})

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
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, 10*time.Second)
	if res != porcupine.Ok {
		f, _ := os.CreateTemp("", "kv-history-*.html")
		if f != nil {
			porcupine.Visualize(kvModel, info, f)
			f.Close()
			t.Logf("history written to %s", f.Name())
		}
		t.Fatalf("history of %d operations is %s", len(history), res)
	}
	t.Logf("%d kills survived; %d appends from %d clients, %d retries, %d operations checked; %v",
		kills, total, clients, totalRetries, len(history), time.Since(start).Round(time.Millisecond))
}
