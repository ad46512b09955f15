package rpc

import (
	"bytes"
	"encoding/gob"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// waitConns waits until the server serves n connections, or fails.
func waitConns(t *testing.T, s *Server, n int64) {
	t.Helper()
	if !testwait.Until(testwait.Deadline, func() bool { return s.Stats().Connections == n }) {
		t.Fatalf("server serves %d connections, want %d", s.Stats().Connections, n)
	}
}

// waitClosedByPeer reads nc until the server closes it, within 5 s.
func waitClosedByPeer(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	if isTimeout(err) {
		t.Fatal("the server did not close the connection")
	}
}

// stalledReader hands out data, then reports a read timeout, as a
// connection whose peer stopped sending does once its deadline passes.
type stalledReader struct{ data []byte }

func (r *stalledReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, &net.OpError{Op: "read", Err: timeoutErr{}}
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestStalledMessageHoldsOnlyWhatArrived(t *testing.T) {
	// A message announcing 4 MiB (0xFD: three length bytes follow) of
	// which 3 bytes came: a gob decoder would allocate the 4 MiB first.
	stalled := []byte{0xFD, 0x3F, 0xFF, 0xFF, 1, 2, 3}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := newMsgReader(&stalledReader{data: stalled}, DefaultMaxMessageSize, nil)
	m.msgTimeout = time.Second
	_, err := m.ReadByte()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errSlowMessage) {
		t.Fatalf("err = %v, want errSlowMessage", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
		t.Fatalf("allocated %d bytes for 7 bytes received of a 4 MiB message", got)
	}
}

func TestMessagesOfEverySizeArriveWhole(t *testing.T) {
	// Messages around and far above the read buffer, delivered a few
	// bytes at a time, reach the decoder whole and in order.
	var stream bytes.Buffer
	enc := gob.NewEncoder(&stream)
	var want []string
	for _, n := range []int{0, 1, 100, readBufSize - 10, readBufSize, readBufSize + 1, 3 * readBufSize, 1 << 20} {
		s := strings.Repeat("x", n)
		want = append(want, s)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
	}
	m := newMsgReader(&trickle{data: stream.Bytes(), step: 777}, DefaultMaxMessageSize, nil)
	dec := gob.NewDecoder(m)
	for i, w := range want {
		var got string
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got != w {
			t.Fatalf("message %d: %d bytes, want %d", i, len(got), len(w))
		}
	}
	if _, err := m.ReadByte(); err != io.EOF {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
}

// trickle hands out its data step bytes at a time.
type trickle struct {
	data []byte
	step int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestOversizedMessageIsRefusedBeforeItsBytes(t *testing.T) {
	m := newMsgReader(&stalledReader{data: []byte{0xFD, 0x7F, 0xFF, 0xFF, 9}}, 1<<20, nil)
	if _, err := m.ReadByte(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("err = %v, want ErrMessageTooLarge", err)
	}
	if m.drain != 0x7FFFFF-1 {
		t.Fatalf("drain = %d, want the unread rest of the message", m.drain)
	}
}

func TestServerClosesAConnectionStalledInAMessage(t *testing.T) {
	s, _, addr, _ := startServer(t, WithReadTimeout(100*time.Millisecond))
	c := dial(t, addr)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{0xFE, 0x10, 0x00, 1, 2, 3}) // 4,096 bytes announced, 3 sent
	waitClosedByPeer(t, nc)
	var r int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r); err != nil || r != 3 {
		t.Fatalf("a call on another connection: %v, %d", err, r)
	}
	_ = s
}

func TestServerClosesAnIdleConnectionAfterItsNotice(t *testing.T) {
	s, a, addr, _ := startServer(t, WithIdleTimeout(100*time.Millisecond))
	c := dial(t, addr)
	var r int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r); err != nil {
		t.Fatal(err)
	}
	// The client reads the notice and closes; so does a raw connection
	// that never sent a byte (the server closes that one).
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitClosedByPeer(t, nc)
	waitConns(t, s, 0)
	// The next call goes out on a fresh connection, under every policy.
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce(), atMostOnce()} {
		if err := c.Call(ctxT(t), "Arith.Add", Args{2, 3}, &r, WithSemantics(p)); err != nil || r != 5 {
			t.Fatalf("%s after the idle close: %v", p.Kind(), err)
		}
	}
	if got := a.calls.Load(); got != 4 {
		t.Fatalf("%d executions, want 4", got)
	}
}

func TestIdleTimeoutSparesAConnectionWithACallRunning(t *testing.T) {
	_, a, addr, _ := startServer(t, WithIdleTimeout(50*time.Millisecond))
	c := dial(t, addr)
	go func() {
		time.Sleep(400 * time.Millisecond) // eight idle timeouts
		close(a.block)
	}()
	var r int
	if err := c.Call(ctxT(t), "Arith.Slow", Args{7, 0}, &r); err != nil || r != 7 {
		t.Fatalf("a call running past the idle timeout: %v, %d", err, r)
	}
}

func TestServerClosesAPeerThatStopsReading(t *testing.T) {
	s, _, addr, _ := startServer(t, WithWriteTimeout(100*time.Millisecond))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitConns(t, s, 1)
	// Requests whose replies fill every buffer on the way, never read.
	big := strings.Repeat("r", 1<<20)
	go func() {
		enc := gob.NewEncoder(nc)
		for i := range 64 {
			if enc.Encode(&wireRequest{ServiceMethod: "Arith.Echo", Seq: uint64(i)}) != nil || enc.Encode(big) != nil {
				return
			}
		}
	}()
	waitConns(t, s, 0)
}

func TestTLSHandshakeIsTimedOut(t *testing.T) {
	scfg, _ := selfSigned(t)
	s := NewServer(WithHandshakeTimeout(100*time.Millisecond), WithLogger(discardLogger()))
	l, err := ListenTLS("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitClosedByPeer(t, nc) // no ClientHello ever
}

func TestConnectionsBeyondTheCapAreRefusedNotRun(t *testing.T) {
	s, a, addr, sink := startServer(t, WithMaxConnections(2))
	var r int
	c1, c2 := dial(t, addr), dial(t, addr)
	for _, c := range []*Client{c1, c2} {
		if err := c.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r); err != nil {
			t.Fatal(err)
		}
	}
	c3 := dial(t, addr)
	err := c3.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r)
	if err == nil || !errors.Is(err, semantics.ErrNotExecuted) || !strings.Contains(err.Error(), "connection limit") {
		t.Fatalf("a call beyond the cap: %v (class %v), want not executed, naming the limit", err, semantics.ClassOf(err))
	}
	if got := a.calls.Load(); got != 2 {
		t.Fatalf("%d executions, want 2", got)
	}
	for _, c := range []*Client{c1, c2} {
		if err := c.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r); err != nil {
			t.Fatalf("a connection under the cap after the refusal: %v", err)
		}
	}
	c1.Close()
	waitConns(t, s, 1)
	if err := c3.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r, WithSemantics(semantics.AtLeastOnce())); err != nil {
		t.Fatalf("a call once there is room: %v", err)
	}
	if !strings.Contains(sink.String(), "connection limit") {
		t.Fatalf("the refusal was not logged: %q", sink.String())
	}
}

// flakyListener fails its first accepts with an error, as a listener out
// of descriptors does.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
	err   error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestServeOutlivesRunningOutOfDescriptors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := &flakyListener{Listener: inner, fails: 5, err: &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{errno}}}
			s := NewServer(WithLogger(discardLogger()))
			s.Register(new(Arith))
			done := make(chan error, 1)
			go func() { done <- s.Serve(l) }()
			c := dial(t, inner.Addr().String())
			var r int
			if err := c.Call(ctxT(t), "Arith.Add", Args{2, 2}, &r); err != nil {
				t.Fatalf("after %v on accept: %v", errno, err)
			}
			s.Close()
			if err := <-done; !errors.Is(err, ErrServerClosed) {
				t.Fatalf("Serve returned %v", err)
			}
		})
	}
}

// osSyscallError wraps an errno as os.SyscallError does.
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

func TestServeReturnsOnAnErrorItCannotOutlive(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	boom := errors.New("listener broke")
	s := NewServer(WithLogger(discardLogger()))
	defer s.Close()
	if err := s.Serve(&flakyListener{Listener: inner, fails: 1, err: boom}); err != boom {
		t.Fatalf("Serve returned %v, want the listener's error", err)
	}
}

// mapBomb returns a gob stream of one request whose header's metadata map
// declares count entries and holds one.
func mapBomb(t *testing.T, count uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := gob.NewEncoder(&b)
	if err := enc.Encode(&wireRequest{ServiceMethod: "Arith.Add", Seq: 1, Metadata: Metadata{"k": {"v"}}}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(Args{1, 2}); err != nil {
		t.Fatal(err)
	}
	return declareEntries(t, b.Bytes(), count)
}

// declareEntries rewrites a gob stream holding one metadata map of one
// entry ("k": {"v"}) so that the map declares count entries, and fixes the
// length of the message that holds it.
func declareEntries(t *testing.T, stream []byte, count uint64) []byte {
	t.Helper()
	// The map's count (1) precedes its only key ("k", length 1).
	at := bytes.Index(stream, []byte{1, 1, 'k', 1, 1, 'v'})
	if at < 0 {
		t.Fatal("no metadata map in the encoding")
	}
	start := -1
	for i := 0; i < len(stream); {
		n, k := int(stream[i]), 1
		if stream[i] >= 0x80 {
			t.Fatal("unexpected long message")
		}
		if at < i+k+n {
			start = i
			break
		}
		i += k + n
	}
	big := []byte{0xF8, byte(count >> 56), byte(count >> 48), byte(count >> 40), byte(count >> 32), byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)}
	var out []byte
	out = append(out, stream[:start]...)
	out = append(out, byte(int(stream[start])+len(big)-1))
	out = append(out, stream[start+1:at]...)
	out = append(out, big...)
	out = append(out, stream[at+1:]...)
	return out
}

func TestHeaderMapBombIsRefusedBeforeItAllocates(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r); err != nil {
		t.Fatal(err)
	}
	bomb := mapBomb(t, 100_000_000) // would be about 8 GB of map
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(bomb)
	waitClosedByPeer(t, nc)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("a %d-byte request allocated %d bytes", len(bomb), got)
	}
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r); err != nil {
		t.Fatalf("a call on another connection after the attack: %v", err)
	}
	if got := a.calls.Load(); got != 2 {
		t.Fatalf("%d executions, want 2 (the bomb must not run)", got)
	}
}

// A hostile server's reply declaring a huge map fails its connection, and
// the call may-have-executed, before the client allocates for it.
func TestReplyMapBombFailsTheConnectionNotTheClient(t *testing.T) {
	// The answer to the client's first call (seq 1): a response header
	// whose Header metadata map declares 10^8 entries, made as mapBomb
	// makes a request's.
	var b bytes.Buffer
	enc := gob.NewEncoder(&b)
	enc.Encode(&wireResponse{ServiceMethod: "Arith.Add", Seq: 1, Header: Metadata{"k": {"v"}}})
	enc.Encode(3)
	bomb := declareEntries(t, b.Bytes(), 100_000_000)
	a := serveEach(t, func(rwc io.ReadWriteCloser) {
		dec := gob.NewDecoder(rwc)
		var req wireRequest
		if dec.Decode(&req) != nil || dec.Decode(new(Args)) != nil {
			return
		}
		rwc.Write(bomb)
		io.Copy(io.Discard, rwc)
	})
	c := dial(t, a.addr)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var r int
	err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMaybeExecuted) {
		t.Fatalf("call answered by a map bomb: %v, want may have executed", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("the client allocated %d bytes for a bomb of a few hundred", got)
	}
}

// After a large message the server reads on with a fresh gob decoder that
// learned the stream's types again (so that an idle connection does not
// keep the large message): calls of every type keep working on the same
// connection, including types defined before the large message.
func TestCallsAfterALargeMessageKeepTheirConnection(t *testing.T) {
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	big := strings.Repeat("L", 100<<10)
	var sum int
	var echo string
	for i := range 3 {
		if err := c.Call(ctxT(t), "Arith.Add", Args{i, 1}, &sum); err != nil || sum != i+1 {
			t.Fatalf("Add after %d large messages: %d, %v", i, sum, err)
		}
		if err := c.Call(ctxT(t), "Arith.Echo", big, &echo); err != nil || echo != big {
			t.Fatalf("large Echo %d: %d bytes, %v", i, len(echo), err)
		}
		var q Quotient
		if err := c.Call(ctxT(t), "Arith.Divide", Args{7, 2}, &q); err != nil || q.Quo != 3 {
			t.Fatalf("Divide after %d large messages: %+v, %v", i, q, err)
		}
	}
	if n := s.Stats().Connections; n != 1 {
		t.Fatalf("%d connections, want the one", n)
	}
}
