package rpc

import (
	"testing"
	"time"
)

// The server's inline watcher leaves with the server's last connection:
// Close does not wait for its next look, however far away.
func TestInlineWatcherEndsWithTheServer(t *testing.T) {
	setInlineGrace(t, time.Hour)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var got int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil {
		t.Fatal(err)
	}
	if !s.watch.on.Load() {
		t.Fatal("no inline watcher after a request ran inline")
	}
	c.Close()
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the inline watcher's next look")
	}
	if s.watch.on.Load() {
		t.Error("the inline watcher outlived Close")
	}
}
