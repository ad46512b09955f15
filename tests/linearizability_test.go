package tests

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/examples/kv/kvservice/kvcheck"
	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/labrpc/labtest"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/tests/faultproxy"
)

// history collects operations from concurrent clients.
type history struct {
	start time.Time
	mu    sync.Mutex // protects ops
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// runClient performs random operations until the round ends and records
// each one: a call that definitely did not run is left out, one that may
// have run has an unknown outcome and no return time.
func runClient(t *testing.T, id int, kv *kvservice.Client, h *history, rng *rand.Rand, until time.Time, timeout time.Duration) (unknown int) {
	keys := []string{"a", "b", "c"}
	for i := 0; time.Now().Before(until); i++ {
		in := kvcheck.Input{Key: keys[rng.Intn(len(keys))]}
		switch r := rng.Intn(10); {
		case r < 4:
			in.Op = "get"
		case r < 5:
			in.Op, in.Value = "put", fmt.Sprintf("p%d.%d ", id, i)
		default:
			in.Op, in.Value = "append", fmt.Sprintf("x%d.%d ", id, i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		call := h.now()
		var out kvcheck.Output
		var err error
		switch in.Op {
		case "get":
			out.Value, err = kv.Get(ctx, in.Key)
		case "put":
			err = kv.Put(ctx, in.Key, in.Value)
		default:
			out.Value, err = kv.Append(ctx, in.Key, in.Value)
		}
		ret := h.now()
		cancel()
		switch {
		case err == nil:
		case in.Op == "get" || errors.Is(err, rpc.ErrNotExecuted):
			continue // no effect: not part of the history
		case errors.Is(err, rpc.ErrMaybeExecuted):
			out, ret = kvcheck.Output{Unknown: true}, math.MaxInt64
			unknown++
		default:
			t.Errorf("client %d: %s: unexpected error %v", id, in.Op, err)
			continue
		}
		h.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
	}
	return unknown
}

// checkLinearizable checks h, and on failure prints the path of
// porcupine's visualisation of it.
func checkLinearizable(t *testing.T, h *history) {
	t.Helper()
	res, vis, err := kvcheck.Check(h.ops, 30*time.Second)
	switch {
	case res == porcupine.Ok:
	case res == porcupine.Unknown:
		t.Logf("porcupine timed out on %d operations: linearizability not decided", len(h.ops))
	case err != nil:
		t.Fatalf("history of %d operations is not linearizable (no visualisation: %v)", len(h.ops), err)
	default:
		t.Fatalf("history of %d operations is not linearizable; visualisation: %s", len(h.ops), vis)
	}
}

// Issue 6, suite 1, on the lab network: loss, duplication, long
// reordering and partitions.
func TestLinearizableKVOverLabNetwork(t *testing.T) {
	for _, clients := range []int{5, 15} {
		t.Run(fmt.Sprintf("%d-clients", clients), func(t *testing.T) {
			sd := seed(t)
			var h *history
			// The clients and the faults run in virtual time; the
			// linearizability check, pure CPU, runs after, in real time.
			labtest.Virtual(t, func(t *testing.T) { h = linearizableLabRun(t, sd, clients) })
			checkLinearizable(t, h)
		})
	}
}

// linearizableLabRun runs the clients of TestLinearizableKVOverLabNetwork
// against a lossy, duplicating, reordering, partitioned lab network and
// returns their history.
func linearizableLabRun(t *testing.T, sd int64, clients int) *history {
	net := labrpc.MakeNetworkSeed(sd)
	defer net.Cleanup()
	srv := labrpc.MakeServer()
	srv.AddService(labrpc.MakeService(kvservice.New()))
	net.AddServer("kv", srv)
	net.Reliable(false)
	net.Duplicate(0.1)

	h := &history{start: time.Now()}
	until := time.Now().Add(time.Duration(soak()) * 3 * time.Second)
	var wg sync.WaitGroup
	var unknown int
	var umu sync.Mutex
	names := make([]interface{}, clients)
	for i := 0; i < clients; i++ {
		names[i] = fmt.Sprintf("client-%d", i)
		end := net.MakeEnd(names[i])
		net.Connect(names[i], "kv")
		net.Enable(names[i], true)
		rc := rpc.NewClient(end)
		kv := kvservice.NewClient(rc)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer rc.Close()
			u := runClient(t, i, kv, h, rand.New(rand.NewSource(sd+int64(i))), until, time.Second)
			umu.Lock()
			unknown += u
			umu.Unlock()
		}(i)
	}
	// Meanwhile: long reordering for a while, then partitions that
	// cut a third of the clients off the server, then healed.
	rng := rand.New(rand.NewSource(sd))
	stop := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		for phase := 0; ; phase++ {
			select {
			case <-stop:
				net.LongReordering(false)
				net.Heal()
				return
			case <-time.After(300 * time.Millisecond):
			}
			switch phase % 3 {
			case 0:
				net.LongReordering(true)
			case 1:
				net.LongReordering(false)
				cut := []interface{}{}
				rest := []interface{}{"kv"}
				for _, n := range names {
					if rng.Intn(3) == 0 {
						cut = append(cut, n)
					} else {
						rest = append(rest, n)
					}
				}
				net.Partition(rest, cut)
			case 2:
				net.Heal()
			}
		}
	}()
	wg.Wait()
	close(stop)
	chaos.Wait()
	t.Logf("%d clients: %d operations recorded, %d with unknown outcome, %d RPCs on the network",
		clients, len(h.ops), unknown, net.GetTotalCount())
	if len(h.ops) < clients {
		t.Fatalf("only %d operations completed", len(h.ops))
	}
	return h
}

// Issue 6, suite 1, over TCP through the fault proxy: connections killed
// before requests and before replies, and delays.
func TestLinearizableKVOverFaultyTCP(t *testing.T) {
	for _, clients := range []int{5, 15} {
		t.Run(fmt.Sprintf("%d-clients", clients), func(t *testing.T) {
			sd := seed(t)
			srv := rpc.NewServer(rpc.WithLogger(quiet()))
			if err := srv.Register(kvservice.New()); err != nil {
				t.Fatal(err)
			}
			addr := serveTCP(t, srv)
			f := faultproxy.Faults{Drop: 0.05, Delay: time.Millisecond, Jitter: 3 * time.Millisecond}
			proxy, err := faultproxy.New(addr, faultproxy.Config{Seed: sd, Upstream: f, Downstream: f})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()

			h := &history{start: time.Now()}
			until := time.Now().Add(time.Duration(soak()) * 3 * time.Second)
			var wg sync.WaitGroup
			for i := 0; i < clients; i++ {
				rc, err := rpc.Dial(context.Background(), "tcp", proxy.Addr(),
					rpc.WithRedialBackoff(time.Millisecond, 10*time.Millisecond), rpc.WithRetryBudget(nil))
				if err != nil {
					t.Fatal(err)
				}
				kv := kvservice.NewClient(rc).WithWritePolicy(semantics.AtMostOnce(semantics.Backoff(time.Millisecond, 50*time.Millisecond)))
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					defer rc.Close()
					runClient(t, i, kv, h, rand.New(rand.NewSource(sd+int64(i))), until, 4*time.Second)
				}(i)
			}
			wg.Wait()
			ps := proxy.Stats()
			t.Logf("%d clients: %d operations, proxy killed %d connections", clients, len(h.ops), ps.Killed)
			if ps.Killed == 0 {
				t.Fatal("no connection was killed: the faults did nothing")
			}
			checkLinearizable(t, h)
		})
	}
}
