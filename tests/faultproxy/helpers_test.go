package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testServer is a loopback TCP server that counts what it receives and, in
// echo mode, writes it back. When a peer half-closes, it closes.
type testServer struct {
	ln       net.Listener
	echo     bool
	received atomic.Int64 // bytes, over all connections
	finished chan int64   // bytes received by each connection, once it ends
	wg       sync.WaitGroup

	mu    sync.Mutex // protects following
	conns map[net.Conn]struct{}
}

func startServer(t *testing.T, echo bool) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, echo: echo, finished: make(chan int64, 1000), conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) Addr() string { return s.ln.Addr().String() }

func (s *testServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handle(c)
	}
}

func (s *testServer) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	var total int64
	defer func() {
		select {
		case s.finished <- total:
		default: // nobody is counting; never block Close
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		total += int64(n)
		s.received.Add(int64(n))
		if n > 0 && s.echo {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops the server and waits for its goroutines.
func (s *testServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// nextFinished returns the byte count of the next server connection to end.
func (s *testServer) nextFinished(t *testing.T) int64 {
	t.Helper()
	select {
	case n := <-s.finished:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: server connection never ended")
		return 0
	}
}

func startProxy(t *testing.T, target string, cfg Config) *Proxy {
	t.Helper()
	p, err := New(target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads len(msg) bytes back within 5 s.
func roundTrip(c net.Conn, msg []byte) ([]byte, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return got, err
}

// readUntilError reads until an error and returns the data and the error;
// it fails the test after 5 s.
func readUntilError(t *testing.T, c net.Conn) ([]byte, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("deadlock: connection still open after 5 s (read %d bytes)", len(got))
			}
			return got, err
		}
	}
}

// expectNothingFor checks that nothing arrives on c within d.
func expectNothingFor(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 1)
	n, err := c.Read(buf)
	if !isTimeout(err) {
		t.Fatalf("read within %v = %d bytes, %v; want a timeout", d, n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// expectRefused dials addr and expects the proxy to reset the connection
// at once: the dial itself may see the reset, or the first read.
func expectRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		if !isReset(err) {
			t.Fatalf("dial: %v, want success or ECONNRESET", err)
		}
		return
	}
	defer c.Close()
	if got, err := readUntilError(t, c); len(got) != 0 || !(isReset(err) || errors.Is(err, io.EOF)) {
		t.Errorf("refused connection read %q, %v; want ECONNRESET or EOF", got, err)
	}
}
