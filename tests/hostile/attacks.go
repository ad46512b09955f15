//go:build linux

package hostile

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

// attacks lists the attacks at scale sc, in the order of issue 19's list
// (the ones it did not list last).
func attacks(sc scale) []*attack {
	mapCount := uint64(sc.pick(1_000_000, 10_000_000))
	return []*attack{
		control(),
		headerMap("header-map", mapCount, overTCP, false),
		headerMap("header-map-1e8", 100_000_000, overTCP, true),
		argMap(),
		argMapRepeated(),
		argSliceDeclared(),
		argRows(),
		deepNesting("deep-nesting", "Store.Lookup", "a Path (Child *Path)", pathType, pathBody, 2, 200_000),
		deepNesting("deep-nesting-tree", "Store.Depth", "a Tree (Kids []*Tree)", treeTypes, treeBody, 3, 100_000),
		stalled("stalled", overTCP),
		typeFlood("typeflood-structs", structTypeDefs),
		typeFlood("typeflood-slices", sliceTypeDefs),
		descriptorExhaustion(),
		idleFresh(),
		idleAfterCall(),
		idleAfterLargeCall(),
		writeBlocked(),
		sessionsPastInterceptor(),
		sessionFlood("sessions-flood", 1000),
		sessionFlood("sessions-flood-default", 0),
		keptReplies(),
		emptyMetadataKeys(),
		unknownServiceName(),
		logNewline(),
		malformedBurst(),
		debugPage(),
		tlsNoHello(),
		headerMap("http-header-map", mapCount, overHTTP, false),
		stalled("http-stalled", overHTTP),
		jsonStalled(),
	}
}

// attackNamed returns the attack called name, or nil.
func attackNamed(name string) *attack {
	for _, a := range attacks(currentScale()) {
		if a.name == name {
			return a
		}
	}
	return nil
}

// AttackNames lists the attacks that run at full scale (full) or by
// default.
func AttackNames(full bool) []string {
	var names []string
	for _, a := range attacks(scale{full: full}) {
		if !a.fullOnly || full {
			names = append(names, a.name)
		}
	}
	return names
}

// The goals' bounds.
const (
	// allocPerByte and allocSlack bound what a request of N bytes may make
	// the server allocate: allocPerByte·N + allocSlack.
	allocPerByte = 32
	allocSlack   = 64 << 10
	// stalledBound bounds what 100 stalled connections hold together.
	stalledBound = 40 << 20
	// typeBytesPerConn is what a connection may hold for the gob types
	// its peer defined: twice what rpc lets a stream define (1 MiB).
	typeBytesPerConn = 2 << 20
	// keptRepliesBound bounds what one session's never-acknowledged
	// replies hold: the session's reply budget (16 MiB), which admission
	// may overshoot by the calls already running when it is reached (R27),
	// and the replies in flight. The figure is measured with the rest of
	// the server's heap, so the bound leaves room: 64 MiB plus 16.
	keptRepliesBound = 80 << 20
	// idleBytesPerConn and idleGoroutinesPerConn bound what an idle
	// connection costs the server.
	idleBytesPerConn      = 64 << 10
	idleGoroutinesPerConn = 2
	// blockedBytesPerConn bounds what a connection whose peer reads no
	// replies holds: the replies of the calls it may run at once
	// (rpc.DefaultMaxConcurrentPerConn), each of the value it asks for,
	// and the buffers they pass through (the one queued, the one being
	// written, the encoders'), four queues' worth. The
	// multiple is the service's (a small request asks for a large value),
	// so the bound is per reply, not per byte sent.
	blockedBytesPerConn = 4*coalesceQueue + rpc.DefaultMaxConcurrentPerConn*blockedValue // at small scale
	// maxBurstLogLines bounds the log lines of a burst of malformed
	// connections.
	maxBurstLogLines = 100
	// maxErrorResponse bounds the response to a request with a huge name.
	maxErrorResponse = 2 << 10
)

// stallWait is how long the server has to close connections that stalled
// in the middle of a message or a handshake, or stopped reading: past the
// server's read, write and handshake timeouts. At full scale those are
// rpc's defaults (30 s, 30 s, 10 s); at the suite's small scale the
// target server shortens them to 1 s (see quickTimeouts), so that make
// test stays short; rpc's own tests pin the defaults.
var stallWait = func() time.Duration {
	if currentScale().full {
		return 40 * time.Second
	}
	return 5 * time.Second
}()

// quickTimeouts are the target's timeouts at small scale.
var quickTimeouts = []rpc.Option{
	rpc.WithReadTimeout(time.Second), rpc.WithWriteTimeout(time.Second), rpc.WithHandshakeTimeout(time.Second),
}

// coalesceQueue is what a connection queues behind a write in progress
// (internal/coalesce.MaxQueuedBytes), and blockedValue the value the
// write-blocked attack asks for at small scale.
const (
	coalesceQueue = 1 << 20
	blockedValue  = 64 << 10
)

// checkAlloc holds the server to allocating at most allocPerByte times the
// bytes it was sent, plus allocSlack.
func checkAlloc(r *Result) {
	if bound := allocPerByte*r.BytesSent + allocSlack; r.Allocated > bound {
		r.miss("allocated %s for %s sent (bound %s)", size(r.Allocated), size(r.BytesSent), size(bound))
	}
}

func checkClosed(r *Result) {
	if r.Conns > 0 && r.ClosedByServer < r.Conns {
		r.miss("%d of %d connections still open %v after the attack", r.Conns-r.ClosedByServer, r.Conns, r.CloseWait)
	}
}

// tcpWith returns a server over TCP with opts beyond the defaults.
func tcpWith(opts ...rpc.Option) func(scale) targetConfig {
	return func(scale) targetConfig { return targetConfig{kind: overTCP, opts: opts} }
}

func over(k kind) func(scale) targetConfig {
	return func(scale) targetConfig { return targetConfig{kind: k} }
}

// oneShot sends payload on a new connection (through the HTTP tunnel when
// the target is HTTP) and waits, at most wait, for the server's verdict:
// bytes back, or the connection closed.
func (s *scenario) oneShot(payload []byte, wait time.Duration) (peerState, time.Duration, error) {
	c, err := s.dial()
	if err != nil {
		return peerOpen, 0, err
	}
	if s.tg.kind == overHTTP {
		if err := s.connect(c); err != nil {
			return peerOpen, 0, err
		}
	}
	start := time.Now()
	if err := s.write(c, payload); err != nil {
		// The server may close before it has read everything.
		if st := c.look(); st != peerOpen {
			return st, time.Since(start), nil
		}
		return peerOpen, 0, err
	}
	st := waitVerdict(c, wait)
	return st, time.Since(start), nil
}

// waitVerdict waits, at most wait, until the server answers on c or closes
// it; then, if it answered, it reads what came and looks again.
func waitVerdict(c *rawConn, wait time.Duration) peerState {
	deadline := time.Now().Add(wait)
	st := c.look()
	for st == peerOpen && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		st = c.look()
	}
	if st == peerAnswered {
		var scratch [4096]byte
		time.Sleep(20 * time.Millisecond) // the rest of the answer, and a close right after it
		if _, after := c.drain(scratch[:]); after == peerClosed {
			return peerClosed
		}
	}
	return st
}

func (st peerState) String() string {
	switch st {
	case peerAnswered:
		return "answered and kept the connection open"
	case peerClosed:
		return "closed the connection"
	}
	return "neither answered nor closed the connection"
}

// connect opens the HTTP tunnel on c, as rpc.DialHTTP does.
func (s *scenario) connect(c *rawConn) error {
	if err := s.write(c, []byte("CONNECT "+rpc.DefaultRPCPath+" HTTP/1.0\n\n")); err != nil {
		return err
	}
	var got []byte
	var b [1]byte
	for !bytes.HasSuffix(got, []byte("\n\n")) && len(got) < 1024 {
		if _, err := c.Read(b[:]); err != nil {
			return fmt.Errorf("reading the answer to CONNECT: %w", err)
		}
		got = append(got, b[0])
	}
	if !bytes.Contains(got, []byte("200 Connected")) {
		return fmt.Errorf("CONNECT answered %q", got)
	}
	return nil
}

// call sends payload on a new connection and reads one response.
func (s *scenario) call(payload []byte) (response, int64, error) {
	c, err := s.dial()
	if err != nil {
		return response{}, 0, err
	}
	if err := s.write(c, payload); err != nil {
		return response{}, 0, err
	}
	resp, n, _, err := newRespReader(c).next(nil)
	return resp, n, err
}

// callAndIdle sends one request on a new connection and reads its answer
// (a small one, in one read).
func (s *scenario) callAndIdle(req []byte) error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	if err := s.write(c, req); err != nil {
		return err
	}
	var scratch [4096]byte
	if _, err := c.Read(scratch[:]); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	return nil
}

// size formats a byte count.
func size(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%s%.0f GiB", neg, float64(n)/(1<<30))
	case n >= 1<<30:
		return fmt.Sprintf("%s%.1f GiB", neg, float64(n)/(1<<30))
	case n >= 10<<20:
		return fmt.Sprintf("%s%.0f MiB", neg, float64(n)/(1<<20))
	case n >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%s%.0f KiB", neg, float64(n)/(1<<10))
	case n >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, float64(n)/(1<<10))
	}
	return fmt.Sprintf("%s%d B", neg, n)
}

// powerOfTen formats a count as a power of ten when it is one.
func powerOfTen(n uint64) string {
	switch n {
	case 1_000_000:
		return "10⁶"
	case 10_000_000:
		return "10⁷"
	case 100_000_000:
		return "10⁸"
	}
	return strconv.FormatUint(n, 10)
}

// short cuts s for a report.
func short(s string) string {
	if len(s) > 160 {
		return s[:120] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}
