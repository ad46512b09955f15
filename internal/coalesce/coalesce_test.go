package coalesce

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a writer whose writes wait until released, and which records
// them.
type gate struct {
	mu      sync.Mutex
	writes  [][]byte
	started chan struct{} // receives once per write, when it starts
	release chan error    // a write returns what it receives here
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 16), release: make(chan error, 16)}
}

func (g *gate) Write(p []byte) (int, error) {
	g.started <- struct{}{}
	if err := <-g.release; err != nil {
		return 0, err
	}
	g.mu.Lock()
	g.writes = append(g.writes, bytes.Clone(p))
	g.mu.Unlock()
	return len(p), nil
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.writes)
}

func send(w *Writer[int], msg string, tag int) error {
	w.Lock()
	io.WriteString(w, msg)
	w.Tag(tag)
	return w.UnlockAndFlush(false, uint64(tag), nil)
}

func TestMessagesQueuedDuringAWriteLeaveTogether(t *testing.T) {
	g := newGate()
	w := New[int](g)
	var flushErr error
	w.OnFailed = func(err error) { flushErr = err }
	done := make(chan error, 1)
	go func() { done <- send(w, "a", 1) }()
	<-g.started // the first write is in progress
	for i, m := range []string{"b", "c", "d"} {
		if err := send(w, m, i+2); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.Queued(); got != 3 {
		t.Fatalf("%d messages queued behind the write, want 3", got)
	}
	g.release <- nil // the first write
	<-g.started      // the flusher's, of the three
	g.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.WaitIdle()
	if g.count() != 2 || string(g.writes[1]) != "bcd" {
		t.Fatalf("writes = %q, want [a bcd]", g.writes)
	}
	if flushErr != nil || w.State() != Idle {
		t.Fatalf("after the writes: state %v, flusher error %v", w.State(), flushErr)
	}
}

func TestFailedWriteReportsEveryMessageItDidNotWrite(t *testing.T) {
	g := newGate()
	w := New[int](g)
	type fate struct {
		tag   int
		whole bool
	}
	var mu sync.Mutex
	var fates []fate
	w.OnWritten = func(tag int, whole bool, err error) {
		mu.Lock()
		fates = append(fates, fate{tag, whole})
		mu.Unlock()
	}
	failed := make(chan error, 1)
	w.OnFailed = func(err error) { failed <- err }
	done := make(chan error, 1)
	go func() { done <- send(w, "a", 1) }()
	<-g.started
	send(w, "b", 2)
	boom := errors.New("boom")
	g.release <- boom
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("the writer's error: %v", err)
	}
	if w.State() != Failed || !errors.Is(w.Err(), boom) {
		t.Fatalf("state %v, err %v; want failed with the write's error", w.State(), w.Err())
	}
	if len(fates) != 2 || fates[0] != (fate{1, false}) || fates[1] != (fate{2, false}) {
		t.Fatalf("fates = %v, want both not written", fates)
	}
	if err := send(w, "c", 3); err != nil || g.count() != 0 {
		t.Fatalf("after the failure a message was written (err %v, %d writes)", err, g.count())
	}
}

// blockedConn is a stream whose writes block until it is closed.
type blockedConn struct {
	closed chan struct{}
	once   sync.Once
	in     chan struct{}
}

func (b *blockedConn) Write(p []byte) (int, error) {
	b.in <- struct{}{}
	<-b.closed
	return 0, os.ErrClosed
}

func (b *blockedConn) Close() { b.once.Do(func() { close(b.closed) }) }

func TestInterruptEndsOnlyItsOwnersWrite(t *testing.T) {
	b := &blockedConn{closed: make(chan struct{}), in: make(chan struct{}, 1)}
	w := New[int](b)
	w.OnInterrupt = b.Close
	done := make(chan error, 1)
	go func() { done <- send(w, "a", 7) }()
	<-b.in
	if w.Interrupt(8, context.Canceled) {
		t.Fatal("another caller's interrupt ended the write")
	}
	if !w.Interrupt(7, context.DeadlineExceeded) {
		t.Fatal("the writer's own interrupt did not end its write")
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the interrupted write failed with %v, want the cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write went on after its interrupt")
	}
	if w.Interrupt(7, context.Canceled) {
		t.Fatal("an interrupt after the write ended did something")
	}
}

func TestQueueBeyondTheBoundWaitsForRoomOrItsContext(t *testing.T) {
	g := newGate()
	w := New[int](g)
	w.OnFailed = func(error) {}
	go send(w, "a", 1)
	<-g.started
	send(w, strings.Repeat("x", MaxQueuedBytes), 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if w.LockCtx(ctx) {
		t.Fatal("room was given beyond MaxQueuedBytes during a write")
	}
	g.release <- nil
	<-g.started
	g.release <- nil
	w.WaitIdle()
	if !w.LockCtx(context.Background()) {
		t.Fatal("no room once the writes ended")
	}
	w.Unlock()
}

func TestIllegalTransitionPanics(t *testing.T) {
	w := New[int](io.Discard)
	defer func() {
		if recover() == nil {
			t.Fatal("idle → flusher did not panic")
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setState(Flusher)
}

// TestTransitionsAreTheListedOnes holds the list in the package comment
// and the table the code checks against each other.
func TestTransitionsAreTheListedOnes(t *testing.T) {
	src, err := os.ReadFile("coalesce.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]State{}
	for s, n := range stateNames {
		names[n] = State(s)
	}
	listed := map[[2]State]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t(\w+)\s+→\s+(\w+)\s`).FindAllStringSubmatch(string(src), -1) {
		from, ok1 := names[m[1]]
		to, ok2 := names[m[2]]
		if !ok1 || !ok2 {
			t.Fatalf("the comment lists %s → %s, not states", m[1], m[2])
		}
		listed[[2]State{from, to}] = true
	}
	for tr := range Transitions {
		if !listed[tr] {
			t.Errorf("%v → %v is allowed but not listed in the package comment", tr[0], tr[1])
		}
	}
	for tr := range listed {
		if _, ok := Transitions[tr]; !ok {
			t.Errorf("%v → %v is listed but not allowed", tr[0], tr[1])
		}
	}
}
