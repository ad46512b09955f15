package tests

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// KV is a minimal key/value service for the memory bounds of the 6.5840 KV
// lab: puts overwrite one key, so the service's own state does not grow.
type KV struct {
	mu   sync.Mutex // protects data
	data map[string]string
}

type PutArgs struct{ Key, Value string }
type PutReply struct{}
type GetArgs struct{ Key string }
type GetReply struct{ Value string }
type EchoReply struct{ Value string }

func (kv *KV) Put(args PutArgs, reply *PutReply) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.data[args.Key] = args.Value
	return nil
}

func (kv *KV) Get(args GetArgs, reply *GetReply) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	reply.Value = kv.data[args.Key]
	return nil
}

func (kv *KV) Echo(args PutArgs, reply *EchoReply) error {
	reply.Value = args.Value
	return nil
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// perClientGrowth runs one call from each of n fresh clients against one
// server and returns the server's heap growth per client. The clients are
// closed (or, with abandon, dropped without Close, as when a client process
// dies): what remains is what the server keeps for them.
func perClientGrowth(t *testing.T, n int, policy semantics.Policy, abandon bool, method string, args, reply any) (float64, *rpc.Server) {
	srv := rpc.NewServer(rpc.WithLogger(quiet()))
	kv := &KV{data: map[string]string{"k": strings.Repeat("v", 1024)}}
	if err := srv.Register(kv); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	warm := rpc.NewClient(direct{srv}, rpc.WithSemantics(policy))
	if err := warm.Call(ctx, method, args, reply); err != nil {
		t.Fatal(err)
	}
	warm.Close()

	before := heap()
	for i := 0; i < n; i++ {
		c := rpc.NewClient(direct{srv}, rpc.WithSemantics(policy))
		if err := c.Call(ctx, method, args, reply); err != nil {
			t.Fatal(err)
		}
		if !abandon {
			c.Close()
		}
	}
	after := heap()
	runtime.KeepAlive(srv)
	runtime.KeepAlive(kv)
	growth := float64(int64(after)-int64(before)) / float64(n)
	t.Logf("%s %s: %d clients (abandoned: %v), server heap %+d bytes, %.1f bytes per client (table: %d sessions)",
		policy.Kind(), method, n, abandon, int64(after)-int64(before), growth, srv.Table().Len())
	return growth, srv
}

// A client that dies without Close leaves its session until the lease ends
// (or the table's cap evicts it): about 115 bytes each.
func TestMemoryPerAbandonedAtMostOnceClient(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 50,000 sessions")
	}
	value := strings.Repeat("x", 1024)
	growth, _ := perClientGrowth(t, 50_000, semantics.AtMostOnce(), true, "KV.Put", PutArgs{Key: "k", Value: value}, &PutReply{})
	if growth > 200 {
		t.Errorf("at-most-once: %.1f bytes per abandoned client, bound is 200", growth)
	}
}

// Closed clients end their sessions: the server keeps nothing for them.
func TestMemoryClosedAtMostOnceClientsLeaveNothing(t *testing.T) {
	value := strings.Repeat("x", 1024)
	growth, srv := perClientGrowth(t, 5000, semantics.AtMostOnce(), false, "KV.Put", PutArgs{Key: "k", Value: value}, &PutReply{})
	if n := srv.Table().Len(); n != 0 {
		t.Errorf("%d sessions left by 5,000 closed clients", n)
	}
	if growth > 10 {
		t.Errorf("at-most-once: %.1f bytes per closed client, bound is 10", growth)
	}
}

func TestMemoryPerAtLeastOnceClient(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 clients")
	}
	growth, _ := perClientGrowth(t, 100_000, semantics.AtLeastOnce(), false, "KV.Get", GetArgs{Key: "k"}, &GetReply{})
	if growth > 10 {
		t.Errorf("at-least-once: %.1f bytes per client, bound is 10", growth)
	}
}

// One client making 1,000 at-most-once calls with 1 KB arguments and 1 KB
// replies: the server keeps only the latest reply, not one per call.
func TestMemoryOneClientKeepsLatestReply(t *testing.T) {
	srv := rpc.NewServer(rpc.WithLogger(quiet()))
	if err := srv.Register(&KV{data: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	c := rpc.NewClient(direct{srv}, rpc.WithSemantics(semantics.AtMostOnce()))
	defer c.Close()
	ctx := context.Background()
	var reply EchoReply
	if err := c.Call(ctx, "KV.Echo", PutArgs{Value: "warm"}, &reply); err != nil {
		t.Fatal(err)
	}
	before := heap()
	for i := 0; i < 1000; i++ {
		v := strings.Repeat(string(rune('a'+i%26)), 1024)
		if err := c.Call(ctx, "KV.Echo", PutArgs{Value: v}, &reply); err != nil {
			t.Fatal(err)
		}
	}
	after := heap()
	runtime.KeepAlive(srv)
	growth := int64(after) - int64(before)
	t.Logf("1,000 calls of 1 KB: server heap %+d bytes", growth)
	// 1,000 retained replies would be over 1 MB; a handful of KB is the
	// latest reply plus noise.
	if growth > 64<<10 {
		t.Errorf("server heap grew by %d bytes over 1,000 calls: replies are not freed on ack", growth)
	}
}
