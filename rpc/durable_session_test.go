package rpc

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// crashBeforeCommit stands for a server killed after it answered the
// session handshake but before the first call of the session committed:
// the first request of method is not delivered, the server restarts, and
// the client sees a lost connection (may have executed).
type crashBeforeCommit struct {
	Transport
	method string
	crash  func()
	once   sync.Once
}

func (l *crashBeforeCommit) RoundTrip(ctx context.Context, req *Request, reply any) error {
	first := false
	if req.ServiceMethod == l.method {
		l.once.Do(func() { first = true })
	}
	if !first {
		return l.Transport.RoundTrip(ctx, req, reply)
	}
	l.crash()
	return semantics.MaybeExecuted(errors.New("test: connection lost"))
}

// A durable server commits a new session before answering the handshake, so
// a crash before the session's first call commits does not make the
// retry of that call "unknown session" (found by the kv SIGKILL test).
func TestDurableSessionSurvivesACrashBeforeItsFirstCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	n := startNode(t, path, "127.0.0.1:0")
	addr := n.addr
	var d net.Dialer
	tr := &crashBeforeCommit{
		Transport: NewStreamTransport(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
			WithRedialBackoff(time.Millisecond, 10*time.Millisecond)),
		method: "Counter.Incr",
		crash:  func() { n.stop(); n = startNode(t, path, addr) },
	}
	c := NewClient(tr, WithLogger(discardLogger()))
	defer c.Close()
	var got int
	err := c.Call(ctxT(t), "Counter.Incr", 5, &got, WithSemantics(semantics.ExactlyOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))))
	if err != nil {
		t.Fatalf("exactly-once call whose first attempt was lost before the server committed anything: %v", err)
	}
}
