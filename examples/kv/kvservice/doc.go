// Package kvservice is semrpc's example key/value service: three methods,
// Get, Put and Append (which returns the value it replaced), served by an
// rpc.Server, and a Client that calls each under the semantics it needs.
//
// Gets are idempotent, so the client makes them at-least-once. Puts and
// Appends are not, so the client makes them at-most-once by default: a
// retry never applies a write twice, and a call that gives up says whether
// it may have run. Against a server whose KV keeps its data and completion
// records in one durable store (NewDurable), the client can make them
// exactly-once instead (Client.WithWritePolicy(semantics.ExactlyOnce())):
// retries then survive server crashes and restarts.
//
// Serving:
//
//	srv := rpc.NewServer()
//	srv.Register(kvservice.New())
//	go srv.Serve(listener)
//
// Calling:
//
//	rc, err := rpc.Dial(ctx, "tcp", addr)
//	kv := kvservice.NewClient(rc)
//	old, err := kv.Append(ctx, "k", "x")
//	v, found, err := kv.Lookup(ctx, "k") // found is false for a missing key
//
// The service's API is deliberately small, so that tests can check its
// histories for linearizability with a simple model: a map from keys to
// strings, a missing key reading as "" (Get). Lookup, and GetReply's Found
// field, tell a missing key from one set to "".
package kvservice
