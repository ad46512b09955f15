package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// TestClientConnTransitionsAreTheListedOnes holds the transitions listed
// in clientconn.go's header comment and the tables setRead and setLife
// check against each other.
func TestClientConnTransitionsAreTheListedOnes(t *testing.T) {
	src, err := os.ReadFile("clientconn.go")
	if err != nil {
		t.Fatal(err)
	}
	reads, lives := map[string]readState{}, map[string]connLife{}
	for i, n := range readStateNames {
		reads[n] = readState(i)
	}
	for i, n := range connLifeNames {
		lives[n] = connLife(i)
	}
	listedRead, listedLife := map[[2]readState]bool{}, map[[2]connLife]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t(\w+)\s+→\s+(\w+)\s`).FindAllStringSubmatch(string(src), -1) {
		rf, ok1 := reads[m[1]]
		rt, ok2 := reads[m[2]]
		lf, ok3 := lives[m[1]]
		lt, ok4 := lives[m[2]]
		switch {
		case ok1 && ok2:
			listedRead[[2]readState{rf, rt}] = true
		case ok3 && ok4:
			listedLife[[2]connLife{lf, lt}] = true
		default:
			t.Errorf("the comment lists %s → %s, which are not states of one machine", m[1], m[2])
		}
	}
	if len(listedRead) != len(readTransitions) {
		t.Errorf("%d read transitions listed, %d allowed", len(listedRead), len(readTransitions))
	}
	for tr := range readTransitions {
		if !listedRead[tr] {
			t.Errorf("%v → %v is allowed but not listed", tr[0], tr[1])
		}
	}
	if len(listedLife) != len(lifeTransitions) {
		t.Errorf("%d lifecycle transitions listed, %d allowed", len(listedLife), len(lifeTransitions))
	}
	for tr := range lifeTransitions {
		if !listedLife[tr] {
			t.Errorf("%v → %v is allowed but not listed", tr[0], tr[1])
		}
	}
}

func TestIllegalConnectionTransitionsPanic(t *testing.T) {
	f := newDeadlineConn()
	for _, tc := range []struct {
		name string
		do   func(c *tcpConn)
	}{
		{"none → caller (skipping chosen)", func(c *tcpConn) { c.setRead(readNone); c.setRead(readCaller) }},
		{"done → none", func(c *tcpConn) { c.setRead(readNone); c.setRead(readDone); c.setRead(readNone) }},
		{"goroutine → chosen", func(c *tcpConn) { c.setRead(readGoroutine); c.setRead(readChosen) }},
		{"failed → live", func(c *tcpConn) { c.setLife(lifeFailed); c.setLife(lifeLive) }},
		{"draining → live", func(c *tcpConn) { c.setLife(lifeDraining); c.setLife(lifeLive) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newReviewConn(f)
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), "illegal") {
					t.Fatalf("recovered %v, want an illegal-transition panic", p)
				}
			}()
			c.mu.Lock()
			defer c.mu.Unlock()
			tc.do(c)
		})
	}
}

// A server that accepts connections and closes (or resets) them at once is
// dialled with backoff whatever the calls do: a connection that ends before
// the server said anything counts as a failed dial. Before, each at-least-
// once call made about eight connections (its not-sent attempts are free).
func TestRedialsArePacedAgainstAServerThatClosesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy semantics.Policy
		reset  bool
	}{
		{"close/no-retry", semantics.NoRetry(), false},
		{"close/at-least-once", semantics.AtLeastOnce(), false},
		{"close/at-most-once", atMostOnce(), false},
		{"reset/at-least-once", semantics.AtLeastOnce(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var accepted atomic.Int64
			a := serveEach(t, func(rwc io.ReadWriteCloser) {
				accepted.Add(1)
				if tc.reset {
					rwc.(*net.TCPConn).SetLinger(0)
				}
				rwc.Close()
			})
			c := dial(t, a.addr, WithSemantics(tc.policy))
			const calls = 32
			for range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				var r int
				if err := c.Call(ctx, "Arith.Add", Args{1, 1}, &r); err == nil {
					t.Fatal("a call succeeded against a server that closes every connection")
				}
				cancel()
			}
			if n := accepted.Load(); n > calls*3/2+4 {
				t.Fatalf("%d connections for %d calls, want at most %d", n, calls, calls*3/2+4)
			}
		})
	}
}

// A caller blocked writing its own request to a server that stopped
// reading returns when its context ends, not when the write does: the
// request was not sent whole, so the call was not sent.
func TestWriteIsBoundedByTheCallersContext(t *testing.T) {
	a := serveEach(t, func(rwc io.ReadWriteCloser) {
		io.Copy(io.Discard, io.LimitReader(rwc, 1<<10)) // a little, then nothing
		<-t.Context().Done()
	})
	big := strings.Repeat("w", 64<<20)
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce()} {
		c := dial(t, a.addr, WithSemantics(p))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		done := make(chan error, 1)
		go func() {
			var r string
			done <- c.Call(ctx, "Arith.Echo", big, &r)
		}()
		select {
		case err := <-done:
			cancel()
			if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%v: %v; want not sent, for the deadline", p.Kind(), err)
			}
		case <-time.After(5 * time.Second):
			cancel()
			t.Fatalf("%v: the call is still writing 5 s after its 100 ms deadline", p.Kind())
		}
	}
}

// R24 holds whoever reads: a connection the idle watcher gave a reader
// goroutine, closed by the server just before a call, is not sent on; the
// call goes out on a fresh connection.
func TestConnectionClosedUnderTheWatchersReaderIsNotSentOn(t *testing.T) {
	setIdleLook(t, time.Millisecond)
	s := NewServer(WithLogger(discardLogger()))
	s.Register(new(Arith))
	a := serveEach(t, func(rwc io.ReadWriteCloser) { s.ServeConn(rwc) })
	t.Cleanup(func() { s.Close() })
	c := dial(t, a.addr)
	var r int
	for i := range 50 {
		if err := c.Call(ctxT(t), "Arith.Add", Args{i, 1}, &r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		conn := tcpConnOf(t, c)
		testwait.For(t, "the watcher's reader", func() bool {
			conn.mu.Lock()
			defer conn.mu.Unlock()
			return conn.read == readGoroutine && len(conn.pending) == 0
		})
		accepted := a.accepted()
		accepted[len(accepted)-1].Close()
		// At once: the reader goroutine has not woken to the close yet.
		if err := c.Call(ctxT(t), "Arith.Add", Args{i, 2}, &r); err != nil {
			t.Fatalf("call %d right after the server closed the idle connection: %v", i, err)
		}
	}
}
