// Package faultproxy is a TCP proxy that injects faults, for failure-injection
// test suites. Put it between a client and a server, both on loopback, and it
// forwards bytes in both directions while it drops, resets, delays,
// blackholes or throttles them on request.
//
// # Directions and chunks
//
// Faults are set per direction: upstream is client→server, downstream is
// server→client. Each direction of each connection reads its source socket in
// chunks, a chunk being whatever one Read returns (at most Config.ChunkSize
// bytes), and makes every random decision once per chunk, before forwarding
// it. On loopback a small message written with one Write and answered before
// the next is sent almost always arrives as one chunk, so per-chunk decisions
// act as per-message decisions for request/reply protocols such as semrpc:
//
//   - Upstream Drop kills the connection before the request is forwarded:
//     the server never sees it.
//   - Downstream Drop kills the connection before the reply is forwarded:
//     the server has executed the request, the client loses the reply.
//
// TCP promises no message boundaries, though: back-to-back writes may arrive
// as one chunk and a large message as several. When a test needs an exact
// position in the stream, use Faults.DropAfterBytes, which counts bytes.
//
// A kill closes both sockets, with FIN, or with RST (the peers read
// ECONNRESET) when the Reset draw says so. Data still waiting out a Delay is
// lost with the connection.
//
// # Determinism
//
// Every random decision comes from a stream derived from Config.Seed and the
// connection's index in accept order, one stream per direction; DropNew draws
// from a stream of its own. Each chunk takes the same draws whatever the
// faults in force, so two proxies with the same seed that see the same
// connections, in the same order, split into the same chunks, make the same
// decisions. Connections made one after another give a reproducible run;
// concurrent connections may be accepted in any order.
//
// # Changing faults
//
// SetUpstream, SetDownstream, SetDropNew, Heal and KillAll may be called at
// any time, while traffic flows. New faults apply to the next chunk read on
// every connection; the bandwidth limit applies at once.
//
// # Lifecycle
//
// Close stops the listener, closes every connection and returns only after
// every goroutine the proxy started has returned.
//
// # Example
//
//	srv := startMyServer() // listening on 127.0.0.1:port
//	p, err := faultproxy.New(srv.Addr(), faultproxy.Config{Seed: 42})
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer p.Close()
//	client := dial(p.Addr()) // the client talks to the proxy
//
//	// Lose one reply in ten: the server executes, the client times out
//	// or sees the connection drop, and must decide whether to retry.
//	p.SetDownstream(faultproxy.Faults{Drop: 0.1})
//	runWorkload(client)
//
//	// Lose every request from now on, with RST.
//	p.SetUpstream(faultproxy.Faults{Drop: 1, Reset: 1})
//	expectNotExecuted(client)
//
//	p.Heal()
//	t.Logf("proxy stats: %+v", p.Stats())
package faultproxy
