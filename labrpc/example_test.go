package labrpc_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// KV is a tiny key/value service with a lab-style handler and a net/rpc
// style one.
type KV struct {
	mu   sync.Mutex // protects data
	data map[string]string
}

type PutArgs struct {
	Key, Value string
}

type PutReply struct {
	Previous string
}

// Put stores a value, lab style.
func (kv *KV) Put(args PutArgs, reply *PutReply) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	reply.Previous = kv.data[args.Key]
	kv.data[args.Key] = args.Value
}

// Get reads a value, net/rpc style.
func (kv *KV) Get(key string, value *string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.data[key]
	if !ok {
		return fmt.Errorf("no key %q", key)
	}
	*value = v
	return nil
}

// A server, an end, and calls, as in the classic lab network.
func Example() {
	net := labrpc.MakeNetwork()
	defer net.Cleanup()

	srv := labrpc.MakeServer()
	srv.AddService(labrpc.MakeService(&KV{data: make(map[string]string)}))
	net.AddServer("kv0", srv)

	end := net.MakeEnd("client0")
	net.Connect("client0", "kv0")
	net.Enable("client0", true)

	var put PutReply
	ok := end.Call("KV.Put", PutArgs{Key: "x", Value: "1"}, &put)
	fmt.Println("put:", ok)

	var v string
	ok = end.Call("KV.Get", "x", &v)
	fmt.Println("get:", ok, v)

	var w string
	ok = end.Call("KV.Get", "missing", &w) // the handler's error: false
	fmt.Println("get missing:", ok)

	net.Enable("client0", false)
	var z string
	ok = end.Call("KV.Get", "x", &z)
	fmt.Println("disabled:", ok, "server saw", net.GetCount("kv0"), "of", net.GetTotalCount(), "calls")
	// Output:
	// put: true
	// get: true 1
	// get missing: false
	// disabled: false server saw 3 of 4 calls
}

// A seeded lossy link: the same seed gives the same losses, and the trace
// tells each call's fate.
func ExampleMakeNetworkSeed() {
	run := func(seed int64) (delivered int, fates []labrpc.Fate) {
		net := labrpc.MakeNetworkSeed(seed)
		defer net.Cleanup()
		srv := labrpc.MakeServer()
		srv.AddService(labrpc.MakeService(&KV{data: make(map[string]string)}))
		net.AddServer("kv0", srv)
		end := net.MakeEnd("c")
		net.Connect("c", "kv0")
		net.Enable("c", true)
		_ = net.SetLink("c", labrpc.LinkConfig{DropRequest: 0.3, DropReply: 0.3})
		net.EnableTrace(true)
		for i := 0; i < 20; i++ {
			var reply PutReply
			if end.Call("KV.Put", PutArgs{Key: "k", Value: fmt.Sprint(i)}, &reply) {
				delivered++
			}
		}
		for _, e := range net.Trace() {
			fates = append(fates, e.Fate)
		}
		return delivered, fates
	}
	d1, f1 := run(2024)
	d2, f2 := run(2024)
	fmt.Println("same outcome:", d1 == d2 && fmt.Sprint(f1) == fmt.Sprint(f2))
	fmt.Println("some lost:", d1 < 20)
	// Output:
	// same outcome: true
	// some lost: true
}

// A partition cuts ends from servers in other groups until Heal.
func ExampleNetwork_Partition() {
	net := labrpc.MakeNetworkSeed(1)
	defer net.Cleanup()
	for _, name := range []string{"a", "b"} {
		srv := labrpc.MakeServer()
		srv.AddService(labrpc.MakeService(&KV{data: make(map[string]string)}))
		net.AddServer(name, srv)
	}
	toA := net.MakeEnd("toA")
	net.Connect("toA", "a")
	net.Enable("toA", true)

	net.Partition([]interface{}{"toA", "b"}, []interface{}{"a"})
	var reply PutReply
	fmt.Println("partitioned:", toA.Call("KV.Put", PutArgs{Key: "k", Value: "v"}, &reply))
	net.Heal()
	fmt.Println("healed:", toA.Call("KV.Put", PutArgs{Key: "k", Value: "v"}, &reply))
	// Output:
	// partitioned: false
	// healed: true
}

// An end is an rpc.Transport: an rpc.Client with at-most-once semantics
// retries lost calls, and the server's table keeps them from running twice.
func ExampleClientEnd_RoundTrip() {
	net := labrpc.MakeNetworkSeed(7)
	defer net.Cleanup()
	srv := labrpc.MakeServer()
	srv.AddService(labrpc.MakeService(&KV{data: make(map[string]string)}))
	net.AddServer("kv0", srv)
	end := net.MakeEnd("c")
	net.Connect("c", "kv0")
	net.Enable("c", true)
	_ = net.SetLink("c", labrpc.LinkConfig{DropReply: 0.5, Duplicate: 0.5})

	client := rpc.NewClient(end, rpc.WithSemantics(semantics.AtMostOnce(
		semantics.MaxAttempts(30), semantics.Backoff(time.Millisecond, 2*time.Millisecond))))
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, v := range []string{"1", "2", "3"} {
		var reply PutReply // fresh: decoding into a used reply may not work
		if err := client.Call(ctx, "KV.Put", PutArgs{Key: "x", Value: v}, &reply); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("put %s, previous %q\n", v, reply.Previous)
	}
	// Output:
	// put 1, previous ""
	// put 2, previous "1"
	// put 3, previous "2"
}
