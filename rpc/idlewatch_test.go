package rpc

import (
	"errors"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
)

// A server's shutdown notice on a connection nobody reads is read by the
// reader the idle watcher gives it, and the client closes the connection.
func TestShutdownNoticeIsReadOnAnIdleConnection(t *testing.T) {
	setIdleLook(t, time.Millisecond)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var got int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil {
		t.Fatal(err)
	}
	conn := tcpConnOf(t, c)
	if err := s.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitNoticeRead(t, conn, "idle")
	tr := c.t.(*tcpTransport)
	tr.mu.Lock()
	cur := tr.cur
	tr.mu.Unlock()
	if cur != nil {
		t.Error("the client still uses a connection after the server's notice")
	}
}

// A connection dialled before any call (WithEagerDial) is idle from the
// start: it too gets a reader from the idle watcher, so that a server's
// shutdown notice is read and the connection closed without waiting for a
// call. (It goes idle without passing through idle(), which is what starts
// the watcher; unwatched, it made Shutdown wait out its grace for this
// client, and stayed open, unread, until the client's Close.)
func TestEagerlyDialledConnectionIsWatchedWhileIdle(t *testing.T) {
	setIdleLook(t, time.Millisecond)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr, WithEagerDial())
	conn := tcpConnOf(t, c)
	// The dial is over once the kernel has the connection: wait until the
	// server serves it, or Shutdown just drops it (a reset, no notice).
	testwait.For(t, "the server to take the connection", func() bool { return s.Stats().Connections == 1 })
	if err := s.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitNoticeRead(t, conn, "eagerly dialled")
}

// waitNoticeRead waits until the client has read the server's shutdown
// notice on conn and closed it.
func waitNoticeRead(t *testing.T, conn *tcpConn, what string) {
	t.Helper()
	ended := func() error {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.err
	}
	testwait.For(t, "the client to read the shutdown notice on its "+what+" connection", func() bool { return ended() != nil })
	if err := ended(); !errors.Is(err, errGoneAway) {
		t.Errorf("connection ended with %v, want the server's notice read", err)
	}
}
