// Package labrpc is a simulated network for testing distributed systems in
// one process: client ends send requests over links that can delay, lose,
// duplicate and reorder messages to servers that can be disconnected,
// partitioned, killed and replaced.
//
// # A drop-in for the classic lab network
//
// The API is that of the classic 6.824/6.5840 labrpc package: MakeNetwork,
// Reliable, LongReordering, LongDelays, MakeEnd, Connect, Enable,
// AddServer, DeleteServer, GetCount, GetTotalCount, GetTotalBytes,
// MakeServer, AddService, MakeService and ClientEnd.Call, with the same
// names, argument and result types. A Raft or KV lab written against it
// needs only its import paths changed, to this package and to
// github.com/semrpc/semrpc/labrpc/labgob. Names of ends and servers are any
// comparable values. A service is a receiver whose methods look like
//
//	func (t *T) Method(args A, reply *R)       // the lab style
//	func (t *T) Method(args A, reply *R) error // the net/rpc style
//
// called as "T.Method"; a server may hold several services. A receiver
// without such methods is accepted without a word, as the classic network
// accepted it (the 2025 labs' tester registers one at every server start);
// under go test -v a log line says so.
//
// The defaults are the classic ones:
//
//   - Arguments and replies travel as gob bytes: nothing is shared between
//     caller and handler, the handler gets a fresh zero reply, and labgob's
//     warnings (lower-case fields, decoding into a non-zero reply, under the
//     classic conditions) apply. GetTotalBytes counts what a fresh gob
//     encoder per message sends, type information included.
//   - The network starts reliable. Unreliable: each request is delayed
//     0–26 ms, then 10% of requests are lost (the handler never runs) and 10%
//     of replies are lost after the handler ran; Call returns false.
//   - Long reordering: two replies in three are held back 200 ms to 2.2 s,
//     most of them near the short end.
//   - A call on a disabled or unconnected end, or to a missing server,
//     returns false after up to 100 ms (up to 7 s with long delays).
//   - A deleted or replaced server never delivers a reply, even from a
//     handler that finishes later; a caller waiting on it is released at
//     once. Disabling the end has the same effect on calls in progress.
//   - Each call's delays are its own: a call made after Enable(end, true) is
//     not held up by earlier calls still waiting out their delays.
//
// Where a mistake in the code under test would otherwise hide, Call fails
// loudly as the classic network did:
//
//   - A panic in a handler called through Call is not recovered: it crashes
//     the test with the handler's stack, instead of leaving the handler's
//     locks held for a later, unexplained deadlock. (Calls through RoundTrip,
//     an rpc.Client's transport, keep the rpc server core's recovery, as
//     over TCP.)
//   - Call on an unknown service or method, or a name without a dot,
//     panics with a message that lists the server's methods. RoundTrip
//     returns rpc.ErrUnknownMethod instead.
//
// Call returns false for undecodable arguments (logged) and for a handler
// that returned an error (not logged).
//
// # Beyond the classic network
//
//   - Seeds: MakeNetworkSeed(seed) draws every random decision from a
//     generator per end derived from the seed and the end's place in the
//     order of MakeEnd calls (lab harnesses name ends with random strings),
//     all of a call's decisions when it starts; the same seed, the same order
//     of MakeEnd calls and the same order of calls on each end give the same
//     fates. MakeNetwork takes its seed from
//     $LABRPC_SEED if set, else at random; Seed reports it.
//   - Duplication: Duplicate(rate) delivers requests twice. A plain call's
//     handler then runs twice; a call with an at-most-once header (from
//     rpc.Client under semantics.AtMostOnce) is answered from the server
//     core's table the second time.
//   - Per-link faults: SetLink(end, LinkConfig{...}) gives an end its own
//     drop and duplicate rates and delay range.
//   - Partitions: Partition(groups...) cuts every end from every server in
//     another group; Heal restores them.
//   - A trace: EnableTrace(true) records, in a bounded ring (SetTraceSize),
//     the start of each call and its ending (replied, dropped, reply dropped,
//     server dead, disconnected, failed, timed out, with whether it was
//     duplicated or held back) and every change of topology. Label(end,
//     "0→2") names an end's owner; Summarize(method, f) adds a summary of
//     args and replies (term, index). TraceTo streams events to a callback,
//     TraceToFile to a JSON-lines file. Trace and TraceString return the
//     ring; WriteTimeline draws it as a self-contained HTML page (a lane per
//     server and end, each call a bar coloured by its fate) and WriteShiViz
//     writes it as a log with vector clocks that ShiViz loads.
//   - Virtual time: a network made inside a testing/synctest bubble works
//     there (every test of this package also runs in one), and SetLatency
//     makes every message take time, so loops bounded by elapsed time end.
//     Under labtest the run's latency applies from the start, and the
//     network starts with its trace on and registers itself, so that a
//     failing test's timeline can be written.
//     A network used outside the bubble it was made in (or made outside and
//     used inside one) panics at once saying so, instead of hanging or
//     stopping the program with the runtime's fatal error.
//   - Contexts: CallContext(ctx, ...) gives up when ctx ends. After Cleanup
//     every call fails at once, and no goroutine or timer of the network
//     outlives Cleanup (a handler blocked in user code ends when it returns).
//   - An rpc.Transport: a ClientEnd can carry an rpc.Client's calls, with
//     RoundTrip's errors classified as not sent or maybe executed, so the
//     client's retry policies and the server's duplicate table behave as
//     over TCP.
//
// # Speed
//
// The classic network made a fresh gob encoder and decoder for every message
// and passed every call through one goroutine. Here a call runs on its
// caller's goroutine up to the handler, which runs on a reused worker, and
// values are copied through pooled, persistent gob encoder/decoder pairs, one
// pool per type, so type information is compiled once. GetTotalBytes still
// counts what a fresh encoder would have sent. BenchmarkClassicStyle and
// BenchmarkLabrpc compare the two designs.
//
// # Example
//
//	type Counter struct{ mu sync.Mutex; n int }
//
//	func (c *Counter) Add(delta int, reply *int) {
//		c.mu.Lock()
//		defer c.mu.Unlock()
//		c.n += delta
//		*reply = c.n
//	}
//
//	net := labrpc.MakeNetworkSeed(42)
//	defer net.Cleanup()
//	srv := labrpc.MakeServer()
//	srv.AddService(labrpc.MakeService(&Counter{}))
//	net.AddServer("s1", srv)
//	end := net.MakeEnd("client-1")
//	net.Connect("client-1", "s1")
//	net.Enable("client-1", true)
//
//	var total int
//	if end.Call("Counter.Add", 5, &total) { // true: total == 5
//		...
//	}
//
//	net.Reliable(false) // from now on calls may fail; retry them
//	net.Partition([]interface{}{"client-1"}, []interface{}{"s1"})
//	ok := end.Call("Counter.Add", 1, &total) // false, after up to 100 ms
//
//	// The same end under at-most-once semantics:
//	client := rpc.NewClient(end, rpc.WithSemantics(semantics.AtMostOnce()))
//	err := client.Call(ctx, "Counter.Add", 1, &total)
package labrpc
