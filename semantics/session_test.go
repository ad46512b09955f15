package semantics

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
)

func mustBegin(t *testing.T, s *Session) Header {
	t.Helper()
	h, err := s.Begin(context.Background())
	if err != nil {
		t.Fatalf("Begin() = %v", err)
	}
	if !h.Valid() {
		t.Fatalf("Begin() = %v, not a valid header", h)
	}
	return h
}

func TestSessionHeaders(t *testing.T) {
	s := NewSession(42, 0)
	if s.ID().IsZero() {
		t.Fatal("ID() is zero")
	}
	if NewSession(42, 0).ID() == s.ID() {
		t.Error("two sessions share an id")
	}
	if s.Epoch() != 42 || s.Window() != DefaultWindow {
		t.Errorf("Epoch() = %d, Window() = %d; want 42, %d", s.Epoch(), s.Window(), DefaultWindow)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		h := mustBegin(t, s)
		want := Header{Client: s.ID(), Seq: seq, Ack: 1, Epoch: 42}
		if h != want {
			t.Errorf("Begin() = %v, want %v", h, want)
		}
	}
	s.End(1)
	if h, want := s.Retry(3), (Header{Client: s.ID(), Seq: 3, Ack: 2, Epoch: 42}); h != want {
		t.Errorf("Retry(3) = %v, want %v (same seq, advanced ack)", h, want)
	}
	if h := mustBegin(t, s); h.Seq != 4 || h.Ack != 2 {
		t.Errorf("Begin() = %v, want seq 4 ack 2", h)
	}
}

// Ack is the smallest seq not yet ended, whatever order calls end in.
func TestSessionAckOutOfOrder(t *testing.T) {
	s := NewSession(1, 8)
	for i := 0; i < 5; i++ {
		mustBegin(t, s)
	}
	steps := []struct {
		end         uint64
		ack         uint64
		outstanding int
	}{
		{3, 1, 4},
		{3, 1, 4}, // ending it again does nothing
		{1, 2, 3},
		{2, 4, 2},
		{5, 4, 1},
		{4, 6, 0},
		{4, 6, 0}, // nor below the ack
		{9, 6, 0}, // so does ending a seq never begun
	}
	for _, st := range steps {
		s.End(st.end)
		if got := s.Ack(); got != st.ack {
			t.Errorf("after End(%d): Ack() = %d, want %d", st.end, got, st.ack)
		}
		if got := s.Outstanding(); got != st.outstanding {
			t.Errorf("after End(%d): Outstanding() = %d, want %d", st.end, got, st.outstanding)
		}
	}
	if h := mustBegin(t, s); h.Seq != 6 || h.Ack != 6 {
		t.Errorf("Begin() = %v, want seq 6 ack 6", h)
	}
}

// The ring of ended flags is reused lap after lap: ending calls in random
// orders across many laps of a small window must keep the ack and the count
// exact, as a plain model computes them.
func TestSessionWindowWraps(t *testing.T) {
	const window = 4
	rng := rand.New(rand.NewSource(1))
	s := NewSession(1, window)
	ended := make(map[uint64]bool) // the model: every seq ended so far
	next := uint64(1)
	for lap := 0; lap < 200; lap++ {
		// Fill the window up to its limit, then end a random subset of
		// the open seqs in a random order.
		for next-s.Ack() < window {
			if h := mustBegin(t, s); h.Seq != next {
				t.Fatalf("lap %d: Begin() = %v, want seq %d", lap, h, next)
			}
			next++
		}
		var open []uint64
		for seq := s.Ack(); seq < next; seq++ {
			if !ended[seq] {
				open = append(open, seq)
			}
		}
		rng.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
		for _, seq := range open[:1+rng.Intn(len(open))] {
			s.End(seq)
			ended[seq] = true
			wantAck := uint64(1)
			for ended[wantAck] {
				wantAck++
			}
			wantOut := 0
			for q := wantAck; q < next; q++ {
				if !ended[q] {
					wantOut++
				}
			}
			if s.Ack() != wantAck || s.Outstanding() != wantOut {
				t.Fatalf("lap %d, End(%d): Ack() = %d, Outstanding() = %d; want %d, %d",
					lap, seq, s.Ack(), s.Outstanding(), wantAck, wantOut)
			}
		}
	}
}

func TestSessionWindowBlocks(t *testing.T) {
	s := NewSession(1, 2)
	mustBegin(t, s)
	mustBegin(t, s)

	// blocked asserts that Begin waits until its context ends.
	blocked := func(why string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if h, err := s.Begin(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Begin() = %v, %v %s; want it to wait", h, err, why)
		}
	}
	blocked("with the window full")
	// Seq 2 is done but seq 1 is not: the window spans 1..2 still.
	s.End(2)
	blocked("while the first call of the window is outstanding")

	got := make(chan Header, 1)
	go func() {
		h, err := s.Begin(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	select {
	case h := <-got:
		t.Fatalf("Begin() = %v returned before the window opened", h)
	case <-time.After(20 * time.Millisecond):
	}
	s.End(1)
	select {
	case h := <-got:
		if h.Seq != 3 || h.Ack != 3 {
			t.Errorf("Begin() = %v, want seq 3 ack 3", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: Begin did not wake when the window opened")
	}

	// A second round: the wakeup is rearmed, and ends that advance the ack
	// with nobody waiting are harmless.
	if h := mustBegin(t, s); h.Seq != 4 {
		t.Fatalf("Begin() = %v, want seq 4", h)
	}
	blocked("with the window full again")
	s.End(3)
	s.End(4)
	if h := mustBegin(t, s); h.Seq != 5 || h.Ack != 5 {
		t.Errorf("Begin() = %v, want seq 5 ack 5", h)
	}
}

func TestSessionBeginCanceled(t *testing.T) {
	s := NewSession(1, 1)
	mustBegin(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Begin(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || ClassOf(err) != ClassNotSent {
			t.Errorf("Begin() = %v, want a not-sent error wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: Begin ignored its context")
	}
	if s.Outstanding() != 1 {
		t.Errorf("Outstanding() = %d, want 1: a canceled Begin takes no seq", s.Outstanding())
	}
	s.End(1)
	if h := mustBegin(t, s); h.Seq != 2 {
		t.Errorf("Begin() = %v, want seq 2", h)
	}
}

func TestSessionConcurrent(t *testing.T) {
	const (
		workers = 16
		calls   = 500
		window  = 8
	)
	s := NewSession(7, window)
	seen := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				h, err := s.Begin(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if !h.Valid() || h.Seq-h.Ack >= window {
					t.Errorf("Begin() = %v: invalid or outside the window", h)
				}
				if r := s.Retry(h.Seq); r.Seq != h.Seq || r.Ack < h.Ack || r.Ack > h.Seq {
					t.Errorf("Retry(%d) = %v after Begin() = %v", h.Seq, r, h)
				}
				if n := s.Outstanding(); n < 1 || n > window {
					t.Errorf("Outstanding() = %d, want 1..%d", n, window)
				}
				seen[w] = append(seen[w], h.Seq)
				s.End(h.Seq)
			}
		}(w)
	}
	wg.Wait()
	unique := make(map[uint64]bool)
	for _, seqs := range seen {
		for _, seq := range seqs {
			if unique[seq] {
				t.Fatalf("seq %d assigned twice", seq)
			}
			unique[seq] = true
		}
	}
	if len(unique) != workers*calls {
		t.Errorf("%d seqs assigned, want %d", len(unique), workers*calls)
	}
	if s.Outstanding() != 0 || s.Ack() != workers*calls+1 {
		t.Errorf("Outstanding() = %d, Ack() = %d; want 0, %d", s.Outstanding(), s.Ack(), workers*calls+1)
	}
}

func BenchmarkSessionBeginEnd(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		s := NewSession(1, 0)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			h, err := s.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			s.End(h.Seq)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := NewSession(1, 0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h, err := s.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				s.End(h.Seq)
			}
		})
	})
}

// waitersQueued returns how many Begins wait for a window slot.
func waitersQueued(s *Session) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

// A full window hands each freed slot to one waiting Begin, in the order
// they came; the others keep waiting.
func TestSessionFullWindowWakesOneWaiterPerFreedSlotInArrivalOrder(t *testing.T) {
	s := NewSession(1, 2)
	first, second := mustBegin(t, s), mustBegin(t, s)
	const waiters = 3
	got := make([]chan Header, waiters)
	for i := range got {
		got[i] = make(chan Header, 1)
		go func() {
			h, err := s.Begin(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] <- h
		}()
		testwait.For(t, "Begin queued", func() bool { return waitersQueued(s) == i+1 })
	}
	s.End(first.Seq)
	if h := <-got[0]; h.Seq != 3 {
		t.Errorf("first waiter got seq %d, want 3", h.Seq)
	}
	if n := waitersQueued(s); n != waiters-1 {
		t.Errorf("one slot freed, %d waiters left, want %d", n, waiters-1)
	}
	s.End(second.Seq)
	if h := <-got[1]; h.Seq != 4 {
		t.Errorf("second waiter got seq %d, want 4", h.Seq)
	}
	s.End(3)
	if h := <-got[2]; h.Seq != 5 {
		t.Errorf("third waiter got seq %d, want 5", h.Seq)
	}
}

// A waiter whose context ends leaves the line, and the next slot goes to
// the one behind it.
func TestSessionWaiterThatGivesUpLeavesTheLine(t *testing.T) {
	s := NewSession(1, 1)
	h1 := mustBegin(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := s.Begin(ctx)
		gaveUp <- err
	}()
	testwait.For(t, "first waiter queued", func() bool { return waitersQueued(s) == 1 })
	next := make(chan Header, 1)
	go func() {
		h, err := s.Begin(context.Background())
		if err != nil {
			t.Error(err)
		}
		next <- h
	}()
	testwait.For(t, "second waiter queued", func() bool { return waitersQueued(s) == 2 })
	cancel()
	if err := <-gaveUp; ClassOf(err) != ClassNotSent || !errors.Is(err, context.Canceled) {
		t.Errorf("waiter that gave up: %v, want not sent, context canceled", err)
	}
	if n := waitersQueued(s); n != 1 {
		t.Errorf("%d waiters after one gave up, want 1", n)
	}
	s.End(h1.Seq)
	if h := <-next; h.Seq != 2 {
		t.Errorf("remaining waiter got seq %d, want 2", h.Seq)
	}
}
