package rpc

import (
	"context"
	"testing"
)

// A caller that read its own reply and whose ctx ended just as it stopped
// reading leaves a past read deadline behind: its AfterFunc's interrupt
// runs after stop() could no longer prevent it, on a connection that is
// idle by then. The peek before the next call must not take that deadline
// for something the server sent: the connection is healthy, and a
// connection given up for it (draining, with nothing pending) stayed open
// with a reader goroutine waiting for a message that never comes.
func TestInlineReviewStaleDeadlineDoesNotDropIdleConn(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	tr := c.t.(*tcpTransport)
	call := func() {
		t.Helper()
		var sum int
		if err := c.Call(context.Background(), "Arith.Add", Args{A: 1, B: 2}, &sum); err != nil || sum != 3 {
			t.Fatalf("Arith.Add = %d, %v; want 3, nil", sum, err)
		}
	}
	for range 20 {
		call()
		tr.mu.Lock()
		first := tr.cur
		tr.mu.Unlock()
		first.mu.Lock()
		idle := first.reader == readerNone
		first.mu.Unlock()
		if !idle {
			continue // the idle watcher gave it a reader meanwhile: try again
		}
		first.interrupt() // a late interrupt, as context.AfterFunc may run it
		call()
		tr.mu.Lock()
		second, draining := tr.cur, len(tr.draining)
		tr.mu.Unlock()
		if second != first || draining != 0 {
			t.Fatalf("a stale read deadline on an idle connection made the next call leave it (same conn %v, %d draining)", second == first, draining)
		}
		return
	}
	t.Skip("the connection was never idle after a call")
}
