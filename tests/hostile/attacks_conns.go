//go:build linux

package hostile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

// Attacks on connections: stalls, idleness, peers that do not read, and
// running out of descriptors.

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
			return targetConfig{kind: overTCP, bigSize: sc.pick(blockedValue, 1<<20)}
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
			bound := int64(4*coalesceQueue + rpc.DefaultMaxConcurrentPerConn*s.scale.pick(blockedValue, 1<<20))
			if per > bound {
				r.miss("a connection that reads no replies holds %s (bound %s)", size(per), size(bound))
			}
		}
		checkClosed(r)
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

// 6. The process runs out of descriptors while accepting.
func descriptorExhaustion() *attack {
	a := &attack{name: "fd-exhaustion",
		goal: "connections until accept fails with EMFILE, then all closed: a new client is served within 2 s"}
	var saved syscall.Rlimit
	a.prepare = func(s *scenario) error {
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
			return err
		}
		return nil
	}
	a.launch = func(s *scenario) error {
		open := countFDs()
		if open < 0 {
			return errors.New("cannot count descriptors")
		}
		lowered := saved
		lowered.Cur = uint64(open + 200)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
			return fmt.Errorf("lowering RLIMIT_NOFILE: %w", err)
		}
		s.cleanup = append(s.cleanup, func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) })
		s.res.fact("RLIMIT_NOFILE lowered to %d (%d open)", lowered.Cur, open)
		// Connect until the process has no descriptor left; the server's
		// accept fails on the connections still waiting in the backlog.
		for i := 0; i < 1000; i++ {
			if _, err := s.dial(); err != nil {
				if !errors.Is(err, syscall.EMFILE) {
					return err
				}
				break
			}
		}
		// Wait for accept to fail: Serve returns, or says in the log that
		// it retries.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if ok, err := s.tg.serving(); !ok {
				s.res.fact("Serve returned while out of descriptors: %v", err)
				break
			}
			if _, lines := s.tg.log.snapshot(); strings.Contains(strings.Join(lines, "\n"), "too many open files") {
				s.res.fact("the server logged the failed accept")
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	a.finish = func(s *scenario) {
		s.end()
		s.runCleanup()
		start := time.Now()
		err := s.tg.freshCall(2 * time.Second)
		if err != nil {
			s.res.miss("a new client was not served within 2 s of the descriptors coming back: %v", err)
			return
		}
		s.res.fact("a new client was served %v after the descriptors came back", time.Since(start).Round(time.Millisecond))
	}
	return a
}
