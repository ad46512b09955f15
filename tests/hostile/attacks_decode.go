//go:build linux

package hostile

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

// Attacks on what the server decodes: declared sizes, nesting, gob types,
// names and metadata.

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
		fmt.Sprintf("a request header declaring %s metadata entries: allocation ≤ %d·N + 64 KiB, connection closed, no crash", powerOfTen(count), allocPerByte),
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
