// Package hostile attacks a default semrpc server with hostile input and
// measures what each attack costs it (issue 19, item 6): the server is
// rpc.NewServer() with an ordinary service (Store, whose arguments carry
// a map, slices and a recursive type), served on loopback with Serve (or
// over TLS, or behind net/http's CONNECT), while legitimate clients — one
// with default options, one at-most-once — call it on their own
// connections during and after the attack.
//
// Each attack is a plain function, run by `go test` (which holds the
// server to the attack's goal) and by tests/hostilereport (which prints
// the table of doc/security.md). The attacker writes its bytes by hand —
// a gob writer written from the format's description, never gob's
// encoder — on raw sockets made with system calls, from buffers built
// before the measurement starts, so that what is measured is the
// server's. Every attack runs in a process of its own: the process's heap,
// goroutines and descriptors are the attack's, and an attack that crashes
// the server ends its own process only, reported as a crash.
//
// Per attack it measures the bytes the attacker sent; the live heap and
// stacks after GC while the attack holds its connections, less the
// baseline ("held"); what the process allocated from the attack's start
// until the server went quiet, legitimate calls paused ("allocated",
// runtime/metrics /gc/heap/allocs:bytes); the peak resident memory; the
// goroutines and descriptors the server added; when the server closed the
// attacker's connections; its log lines; and the legitimate calls that
// failed, and the slowest.
//
// The default sizes keep `go test -race ./tests/hostile/` short; set
// SEMRPC_HOSTILE_FULL=1 (or run tests/hostilereport -full) for the sizes
// of the issue. SEMRPC_HOSTILE_CLOSE_WAIT=seconds changes how long a run
// waits for the server to close connections its timeouts should close
// (10 s by default; idle connections are waited for only when it is set).
//
// The attacks need Linux (raw sockets, /proc, RLIMIT_NOFILE).
package hostile
