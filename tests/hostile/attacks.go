//go:build linux

package hostile

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

// attacks lists the attacks at scale sc, in the order of issue 19's list
// (the ones it did not list last).
func attacks(sc scale) []*attack {
	mapCount := uint64(sc.pick(1_000_000, 10_000_000))
	return []*attack{
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
	// keptRepliesBound bounds the replies one session keeps unacknowledged.
	keptRepliesBound = 64 << 20
	// idleBytesPerConn and idleGoroutinesPerConn bound what an idle
	// connection costs the server.
	idleBytesPerConn      = 64 << 10
	idleGoroutinesPerConn = 2
	// blockedBytesPerConn bounds what a connection whose peer reads no
	// replies holds: twice the largest message.
	blockedBytesPerConn = 2 * rpc.DefaultMaxMessageSize
	// stallWait is how long the server has to close connections that
	// stalled in the middle of a message or a handshake.
	stallWait = 10 * time.Second
	// maxBurstLogLines bounds the log lines of a burst of malformed
	// connections.
	maxBurstLogLines = 100
	// maxErrorResponse bounds the response to a request with a huge name.
	maxErrorResponse = 2 << 10
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

// bombAttack is an attack of one request whose declared sizes no bytes
// back: it is sent once, measured, then again during the legitimate
// calls. The goal is that the server allocates at most allocPerByte per
// byte sent and does not crash; mustClose adds that it closes the
// connection.
func bombAttack(name, goal string, k kind, build func(sc scale) []byte, mustClose bool) *attack {
	a := &attack{name: name, goal: goal, server: over(k)}
	a.prepare = func(s *scenario) error {
		s.state = build(s.scale)
		return nil
	}
	a.launch = func(s *scenario) error {
		st, took, err := s.oneShot(s.state.([]byte), 30*time.Second)
		if err != nil {
			return err
		}
		s.res.fact("server %s after %v", st, took.Round(time.Millisecond))
		if mustClose && st != peerClosed {
			s.res.miss("the server did not close the connection (%s)", st)
		}
		return nil
	}
	a.during = func(s *scenario) {
		payload := s.state.([]byte)
		s.goHelper(func() {
			c, err := dialRaw(s.tg.addr, 5*time.Second)
			if err != nil {
				return
			}
			defer c.close()
			if s.tg.kind == overHTTP && s.connect(c) != nil {
				return
			}
			c.write(payload)
			waitVerdict(c, 5*time.Second)
		})
	}
	a.check = func(s *scenario, r *Result) { checkAlloc(r) }
	return a
}

// requestWith returns the request types, one header and the body's types
// and value.
func requestWith(h header, bodyTypes, body []byte) []byte {
	b := requestTypes()
	b = append(b, headerMessage(h)...)
	b = append(b, bodyTypes...)
	return append(b, body...)
}

// mapDeclaring returns a map value that declares count entries and carries
// one, from "k" to the value entry writes, then the start of a key whose
// length is more than the message holds: the decoder fails there, on a
// length it can see is wrong, not at the message's end (which would end
// the stream), so that the connection stays in use.
func mapDeclaring(count uint64, entry func(b []byte) []byte) []byte {
	return appendUint(entry(appendString(appendUint(nil, count), "k")), 100)
}

// 1. The header's metadata map declares count entries in a few hundred
// bytes.
func headerMap(name string, count uint64, k kind, fullOnly bool) *attack {
	md := mapDeclaring(count, func(b []byte) []byte { return appendString(appendUint(b, 1), "v") })
	a := bombAttack(name,
		fmt.Sprintf("a request header declaring %s metadata entries: allocation ≤ %d·N + 64 KiB, connection closed, no crash", count2(count), allocPerByte),
		k, func(scale) []byte {
			return requestWith(header{method: "Store.Get", seq: 1, metadata: md}, getArgsType(), getBody("k"))
		}, true)
	a.fullOnly = fullOnly
	return a
}

// 2. An argument's map declares 10⁶ entries (full: 10⁷).
func argMap() *attack {
	return bombAttack("arg-map",
		"PutArgs.Tags (map[string]string) declaring 10⁶ (full: 10⁷) entries: allocation ≤ 32·N + 64 KiB, no crash",
		overTCP, func(sc scale) []byte {
			tags := mapDeclaring(uint64(sc.pick(1_000_000, 10_000_000)), func(b []byte) []byte { return appendString(b, "v") })
			return requestWith(header{method: "Store.Put", seq: 1}, putArgsTypes(), putBody("k", nil, tags))
		}, false)
}

// 2b. The same bomb, again and again on one connection: a request whose
// arguments do not decode is answered and the connection kept, so one
// connection can make the server allocate without end.
func argMapRepeated() *attack {
	a := bombAttack("arg-map-repeated",
		"5 argument map bombs of 10⁶ entries (full: 20 of 10⁷) pipelined on one connection: allocation ≤ 32·N + 64 KiB",
		overTCP, func(sc scale) []byte {
			count := uint64(sc.pick(1_000_000, 10_000_000))
			tags := mapDeclaring(count, func(b []byte) []byte { return appendString(b, "v") })
			b := append(requestTypes(), putArgsTypes()...)
			for i := range sc.pick(5, 20) {
				b = append(b, headerMessage(header{method: "Store.Put", seq: uint64(i + 1)})...)
				b = append(b, putBody("k", nil, tags)...)
			}
			return b
		}, false)
	launch := a.launch
	a.launch = func(s *scenario) error {
		err := launch(s)
		// waitVerdict returns at the first answer; let the rest be decoded.
		quiesce(30 * time.Second)
		return err
	}
	return a
}

// 2c. An argument's slice declares 4·10⁸ strings and carries none.
func argSliceDeclared() *attack {
	return bombAttack("arg-slice",
		"BatchArgs.Keys ([]string) declaring 4·10⁸ elements, carrying none: allocation ≤ 32·N + 64 KiB",
		overTCP, func(scale) []byte {
			f := newFields(appendInt(nil, idBatchArgs))
			f.field(0)
			f.b = appendUint(f.b, 400_000_000)
			f.b = appendString(f.b, "k")
			return requestWith(header{method: "Store.Batch", seq: 1}, batchArgsTypes(), frame(f.end()))
		}, false)
}

// 2d. An argument's [][]string made of empty rows, 1 MiB of them (full:
// 4 MiB): one byte on the wire is a 24-byte slice header in memory, and the
// slice grows by copying.
func argRows() *attack {
	return bombAttack("arg-rows",
		"BatchArgs.Rows ([][]string): a message of 1 MiB (full: 4 MiB) of empty rows: allocation ≤ 32·N + 64 KiB",
		overTCP, func(sc scale) []byte {
			rows := sc.pick(1<<20, rpc.DefaultMaxMessageSize) - 64
			return requestWith(header{method: "Store.Batch", seq: 1}, batchArgsTypes(), batchBody(nil, rows))
		}, false)
}

// 3. A recursive argument nested small levels deep (full: as deep as a
// message allows), perLevel bytes a level. The decoder recurses once a
// level: the reading goroutine's stack grows with the depth, up to the
// runtime's fatal limit (1 GB).
func deepNesting(name, method, what string, types func() []byte, body func(levels int) []byte, perLevel, small int) *attack {
	full := (rpc.DefaultMaxMessageSize - 64) / perLevel
	a := &attack{name: name,
		goal: fmt.Sprintf("%s nested %d levels (full: as deep as 4 MiB allows, %d): no crash, answered or closed, memory held (stacks included) ≤ %d·N + 64 KiB",
			what, small, full, allocPerByte)}
	a.prepare = func(s *scenario) error {
		levels := s.scale.pick(small, full)
		s.state = requestWith(header{method: method, seq: 1}, types(), body(levels))
		s.res.fact("%d levels", levels)
		return nil
	}
	a.launch = func(s *scenario) error {
		st, took, err := s.oneShot(s.state.([]byte), 60*time.Second)
		if err != nil {
			return err
		}
		s.res.fact("server %s after %v", st, took.Round(time.Millisecond))
		if st == peerOpen {
			s.res.miss("no verdict within 60 s")
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if bound := allocPerByte*r.BytesSent + allocSlack; r.Held > bound {
			r.miss("holds %s (stacks included) for %s sent (bound %s)", size(r.Held), size(r.BytesSent), size(bound))
		}
	}
	return a
}

// 4. Connections that announce a 4 MiB message, send 3 bytes of it and
// stall.
func stalled(name string, k kind) *attack {
	const n = 100
	a := &attack{name: name, server: over(k), closeWait: stallWait,
		goal: fmt.Sprintf("%d connections each announcing a 4 MiB message and sending 3 bytes: together hold < 40 MiB, closed within %v", n, stallWait)}
	a.launch = func(s *scenario) error {
		// The length of the largest message rpc takes, then the start of a
		// request header: its type id and the delta to its first field.
		msg := appendUint(nil, rpc.DefaultMaxMessageSize)
		msg = appendInt(msg, idRequest)
		msg = append(msg, 1)
		for range n {
			c, err := s.dial()
			if err != nil {
				return err
			}
			if k == overHTTP {
				if err := s.connect(c); err != nil {
					return err
				}
			}
			if err := s.write(c, msg); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if r.Held >= stalledBound {
			r.miss("%d stalled connections hold %s (bound %s)", r.Conns, size(r.Held), size(stalledBound))
		}
		checkClosed(r)
	}
	return a
}

// structTypeDefs returns gob type definitions totalling at most limit
// bytes: struct types of 500 fields each.
func structTypeDefs(limit int) []byte {
	var b []byte
	for id := idFirstCustom; ; id++ {
		fs := make([]wireField, 500)
		for i := range fs {
			fs[i] = wireField{fmt.Sprintf("F%03d", i), tInt}
		}
		def := defineStruct(id, fmt.Sprintf("T%d", id), fs...)
		if len(b)+len(def) > limit {
			return b
		}
		b = append(b, def...)
	}
}

// sliceTypeDefs returns gob type definitions totalling at most limit
// bytes: the smallest definitions there are, unnamed slice types.
func sliceTypeDefs(limit int) []byte {
	var b []byte
	for id := idFirstCustom; ; id++ {
		def := defineSlice(id, "", tInt)
		if len(b)+len(def) > limit {
			return b
		}
		b = append(b, def...)
	}
}

// 5. Connections that each define ~990 KB of gob types (under rpc's 1 MiB
// limit per stream) and stall.
func typeFlood(name string, defs func(limit int) []byte) *attack {
	a := &attack{name: name,
		goal: fmt.Sprintf("connections each sending ~990 KB of type definitions, then stalling: each holds ≤ %s", size(typeBytesPerConn))}
	a.prepare = func(s *scenario) error {
		s.state = defs(990_000)
		return nil
	}
	a.launch = func(s *scenario) error {
		n := s.scale.pick(4, 100)
		for range n {
			c, err := s.dial()
			if err != nil {
				return err
			}
			if err := s.write(c, s.state.([]byte)); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if r.Conns > 0 {
			per := r.Held / int64(r.Conns)
			s.res.fact("%s held per connection", size(per))
			if per > typeBytesPerConn {
				r.miss("each connection holds %s for its types (bound %s)", size(per), size(typeBytesPerConn))
			}
		}
	}
	return a
}

// 7. Connections that connect and send nothing.
func idleFresh() *attack {
	a := &attack{name: "idle", idleClose: true,
		goal: fmt.Sprintf("idle connections that send nothing: each costs ≤ %s and ≤ %d goroutines; closed after the idle timeout (checked with %s)",
			size(idleBytesPerConn), idleGoroutinesPerConn, closeWaitEnv)}
	a.launch = func(s *scenario) error {
		n := s.scale.pick(1000, 5000)
		for range n {
			if _, err := s.dial(); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = checkIdle
	return a
}

// 7b. Connections that make one call, read its answer, and go idle.
func idleAfterCall() *attack {
	a := &attack{name: "idle-after-call", idleClose: true,
		goal: fmt.Sprintf("connections idle after one call: each costs ≤ %s and ≤ %d goroutines; closed after the idle timeout (checked with %s)",
			size(idleBytesPerConn), idleGoroutinesPerConn, closeWaitEnv)}
	a.prepare = func(s *scenario) error {
		s.state = requestWith(header{method: "Store.Get", seq: 1}, getArgsType(), getBody("k"))
		return nil
	}
	a.launch = func(s *scenario) error {
		n := s.scale.pick(200, 1000)
		for range n {
			if err := s.callAndIdle(s.state.([]byte)); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = checkIdle
	return a
}

// 7c. Connections that make one call as large as rpc takes (4 MiB), read
// its answer, and go idle.
func idleAfterLargeCall() *attack {
	a := &attack{name: "idle-after-large-call", idleClose: true,
		goal: fmt.Sprintf("connections idle after one 4 MiB call: each costs ≤ %s", size(idleBytesPerConn))}
	a.prepare = func(s *scenario) error {
		key := strings.Repeat("k", rpc.DefaultMaxMessageSize-256)
		s.state = requestWith(header{method: "Store.Get", seq: 1}, getArgsType(), getBody(key))
		return nil
	}
	a.launch = func(s *scenario) error {
		n := s.scale.pick(20, 100)
		for range n {
			if err := s.callAndIdle(s.state.([]byte)); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = checkIdle
	return a
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

func checkIdle(s *scenario, r *Result) {
	if r.Conns == 0 {
		return
	}
	per, g := r.Held/int64(r.Conns), float64(r.Goroutines)/float64(r.Conns)
	r.fact("%s and %.2f goroutines per connection", size(per), g)
	if per > idleBytesPerConn {
		r.miss("an idle connection holds %s (bound %s)", size(per), size(idleBytesPerConn))
	}
	if g > idleGoroutinesPerConn {
		r.miss("an idle connection has %.2f goroutines (bound %d)", g, idleGoroutinesPerConn)
	}
	if r.CloseWait > 0 {
		checkClosed(r)
	}
}

// 7d. Connections that pipeline requests for large replies and never read.
func writeBlocked() *attack {
	a := &attack{name: "write-blocked", closeWait: stallWait,
		server: func(sc scale) targetConfig {
			return targetConfig{kind: overTCP, bigSize: sc.pick(64<<10, 1<<20)}
		},
		goal: fmt.Sprintf("connections pipelining reads of a large value without reading replies: each holds ≤ %s, closed after the write timeout (%v)",
			size(blockedBytesPerConn), stallWait)}
	a.prepare = func(s *scenario) error {
		unit := append(headerMessage(header{method: "Store.Read", seq: 1}), getBody(BigKey)...)
		s.state = bytes.Repeat(unit, 4096)
		return nil
	}
	a.launch = func(s *scenario) error {
		n := s.scale.pick(1, 2)
		for range n {
			c, err := s.dialTimeout(500 * time.Millisecond)
			if err != nil {
				return err
			}
			if err := s.write(c, append(requestTypes(), getArgsType()...)); err != nil {
				return err
			}
			// Until the server stops reading (its calls are all blocked
			// on writing), or 4096 requests.
			if err := s.write(c, s.state.([]byte)); err != nil && !errors.Is(err, errTimeout) {
				return err
			}
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		r.fact("%d reads executed", s.tg.store.reads.Load())
		if r.Conns > 0 {
			per := r.Held / int64(r.Conns)
			r.fact("%s held per connection", size(per))
			if per > blockedBytesPerConn {
				r.miss("a connection that reads no replies holds %s (bound %s)", size(per), size(blockedBytesPerConn))
			}
		}
		checkClosed(r)
	}
	return a
}

// 10. Metadata of 350,000 keys without values, which count for nothing
// against the metadata limits.
func emptyMetadataKeys() *attack {
	const keys = 350_000
	a := &attack{name: "metadata-empty-keys",
		goal: "request metadata of 350,000 keys without values: refused, the method not run"}
	a.prepare = func(s *scenario) error {
		md := appendUint(nil, keys)
		for i := range keys {
			md = appendString(md, "k"+strconv.FormatInt(int64(i), 36))
			md = appendUint(md, 0)
		}
		s.state = requestWith(header{method: "Store.Get", seq: 1, metadata: md}, getArgsType(), getBody("k"))
		return nil
	}
	a.launch = func(s *scenario) error {
		before := s.tg.store.gets.Load()
		resp, n, err := s.call(s.state.([]byte))
		if err != nil {
			return err
		}
		ran := s.tg.store.gets.Load() - before
		s.res.fact("answer: %d bytes, error %q; Store.Get ran %d times", n, short(resp.Error), ran)
		if resp.Error == "" || ran > 0 {
			s.res.miss("the request was not refused (error %q, the method ran %d times)", short(resp.Error), ran)
		}
		return nil
	}
	return a
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

// 10b. A request for a service whose name is 4 MB long.
func unknownServiceName() *attack {
	a := &attack{name: "unknown-service-4mb",
		goal: fmt.Sprintf("a request naming a 4 MB unknown service: the response is < %s", size(maxErrorResponse))}
	a.prepare = func(s *scenario) error {
		name := strings.Repeat("s", rpc.DefaultMaxMessageSize-256) + ".Get"
		s.state = requestWith(header{method: name, seq: 1}, getArgsType(), getBody("k"))
		return nil
	}
	a.launch = func(s *scenario) error {
		c, err := s.dial()
		if err != nil {
			return err
		}
		if err := s.write(c, s.state.([]byte)); err != nil {
			return err
		}
		resp, n, huge, err := newRespReader(c).next(nil)
		if err != nil {
			return err
		}
		s.res.fact("the response is %s (error %q)", size(n), short(resp.Error))
		if huge || n >= maxErrorResponse {
			s.res.miss("the response is %s (bound %s)", size(n), size(maxErrorResponse))
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) { checkAlloc(r) }
	return a
}

// forgedLine is what an attacker would like the server's log to say.
const forgedLine = "2026/01/01 00:00:00 rpc: admin logged in from 10.0.0.1"

// 10c. A gob type whose name holds a newline, in a header that does not
// decode: the decoder's error quotes the name.
func logNewline() *attack {
	a := &attack{name: "log-newline", goal: "a gob type name with a newline: no forged line in the server's log"}
	a.launch = func(s *scenario) error {
		payload := append(defineStruct(idFirstCustom, "Evil\n"+forgedLine, wireField{"ServiceMethod", tInt}),
			valueOfInt(idFirstCustom, 7)...)
		st, _, err := s.oneShot(payload, 5*time.Second)
		s.res.fact("server %s", st)
		return err
	}
	a.check = func(s *scenario, r *Result) {
		_, lines := s.tg.log.snapshot()
		for _, l := range lines {
			if !strings.HasPrefix(l, logPrefix) {
				r.miss("forged log line: %q", short(l))
			}
		}
	}
	return a
}

// 10d. A burst of connections that each send garbage.
func malformedBurst() *attack {
	a := &attack{name: "malformed-burst",
		goal: fmt.Sprintf("a burst of connections sending malformed gob: ≤ %d log lines", maxBurstLogLines)}
	// A message of three bytes whose type id is 0, which names no type.
	garbage := []byte{3, 0, 0, 0}
	a.launch = func(s *scenario) error {
		n := s.scale.pick(2000, 10_000)
		var scratch [64]byte
		for range n {
			c, err := dialRaw(s.tg.addr, 2*time.Second)
			if err != nil {
				return err
			}
			n, err := c.write(garbage)
			s.sent.Add(int64(n))
			if err == nil {
				c.Read(scratch[:]) // until the server closes
			}
			c.closeReset()
		}
		s.res.fact("%d connections", n)
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if r.LogLines > maxBurstLogLines {
			r.miss("%d log lines (bound %d)", r.LogLines, maxBurstLogLines)
		}
	}
	return a
}

// 11. TLS connections that never send a ClientHello.
func tlsNoHello() *attack {
	const n = 100
	a := &attack{name: "tls-no-hello", server: over(overTLS), closeWait: stallWait,
		goal: fmt.Sprintf("%d connections to a TLS listener that never send a ClientHello: closed within %v", n, stallWait)}
	a.launch = func(s *scenario) error {
		for range n {
			if _, err := s.dial(); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) { checkClosed(r) }
	return a
}

// 12 (not in the list). JSON-RPC connections that stall in the
// middle of a request.
func jsonStalled() *attack {
	const n = 100
	a := &attack{name: "json-stalled", closeWait: stallWait,
		goal: fmt.Sprintf("%d JSON-RPC connections stalled in the middle of a request: hold < 40 MiB, closed within %v", n, stallWait)}
	a.launch = func(s *scenario) error {
		part := []byte(`{"method":"Store.Put","id":1,"params":[{"Key":"k","Value":"`)
		for range n {
			c, err := s.dial()
			if err != nil {
				return err
			}
			if err := s.write(c, part); err != nil {
				return err
			}
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if r.Held >= stalledBound {
			r.miss("%d stalled connections hold %s (bound %s)", r.Conns, size(r.Held), size(stalledBound))
		}
		checkClosed(r)
	}
	return a
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

// count2 formats a count as a power of ten when it is one.
func count2(n uint64) string {
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
