package semantics

import (
	"context"
	"sync"
)

// Session is the client side of at-most-once calls (RIFL-style): it numbers
// the calls of one client id and tells the server, in every header, the
// first call that is not complete yet (Ack), so the server may free the
// cached replies below it.
//
// At most window calls are in the window at once: Begin waits while the
// calls from the first incomplete one up to the newest span window
// sequence numbers, completed or not. That bounds the session's memory and
// the replies the server must keep for it, even when one call is slow and
// later ones complete. A Session is safe for concurrent use.
type Session struct {
	id     ClientID
	epoch  uint64
	window uint64

	mu          sync.Mutex      // protects following
	next        uint64          // the seq Begin assigns next
	ack         uint64          // first seq not ended; every seq below it has ended
	outstanding int             // seqs begun and not ended
	ended       []bool          // ended[seq%window] for ack < seq < next
	waiters     []chan struct{} // Begins waiting for a window slot, first come first
}

// NewSession returns a session with a new random client id, opened against
// the server epoch epoch. window ≤ 0 means DefaultWindow.
func NewSession(epoch uint64, window int) *Session {
	return NewSessionWithID(NewClientID(), epoch, window)
}

// NewSessionWithID returns a session with the id id, as a server's Table.Open
// made it, opened against the server epoch epoch. window ≤ 0 means
// DefaultWindow.
func NewSessionWithID(id ClientID, epoch uint64, window int) *Session {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Session{
		id:     id,
		epoch:  epoch,
		window: uint64(window),
		next:   1,
		ack:    1,
		ended:  make([]bool, window),
	}
}

// ID returns the session's client id.
func (s *Session) ID() ClientID { return s.id }

// Epoch returns the server epoch the session was opened against.
func (s *Session) Epoch() uint64 { return s.epoch }

// Window returns the session's window.
func (s *Session) Window() int { return int(s.window) }

// Begin starts a call: it assigns the next sequence number and returns the
// call's header. It waits while the window is full, and returns an error of
// class ClassNotSent wrapping ctx.Err() if ctx ends first. Every successful
// Begin must be followed by exactly one End of the header's Seq.
//
// Waiting calls get the slots in the order they came: End wakes one waiter
// per slot it frees, not all of them.
func (s *Session) Begin(ctx context.Context) (Header, error) {
	s.mu.Lock()
	var wake chan struct{}
	for s.next-s.ack >= s.window {
		if wake == nil {
			wake = make(chan struct{}, 1)
			s.waiters = append(s.waiters, wake)
		} else {
			// Woken, but a TryBegin took the slot first: first in line again.
			s.waiters = append(s.waiters, nil)
			copy(s.waiters[1:], s.waiters)
			s.waiters[0] = wake
		}
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			s.mu.Lock()
			if !s.dropWaiter(wake) {
				// Woken as ctx ended: the slot goes to the next in line.
				s.wakeWaiters()
			}
			s.mu.Unlock()
			return Header{}, NotSent(ctx.Err())
		}
		s.mu.Lock()
	}
	seq := s.next
	s.next++
	s.outstanding++
	h := Header{Client: s.id, Seq: seq, Ack: s.ack, Epoch: s.epoch}
	s.mu.Unlock()
	return h, nil
}

// TryBegin is Begin without waiting: it reports false, and begins nothing,
// when the window is full.
func (s *Session) TryBegin() (Header, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next-s.ack >= s.window {
		return Header{}, false
	}
	seq := s.next
	s.next++
	s.outstanding++
	return Header{Client: s.id, Seq: seq, Ack: s.ack, Epoch: s.epoch}, true
}

// Retry returns the header for another attempt of the call seq: the same
// client and seq, with the current ack. Call it only between Begin and End
// of seq.
func (s *Session) Retry(seq uint64) Header {
	s.mu.Lock()
	h := Header{Client: s.id, Seq: seq, Ack: s.ack, Epoch: s.epoch}
	s.mu.Unlock()
	return h
}

// End marks the call seq over, whether it got a reply or gave up: its
// window slot is freed once every earlier call has ended too, and the ack
// advances past it. Ending a seq that is not outstanding does nothing. It
// returns how many calls are still outstanding.
//
// A call that gave up after it may have executed must still be ended: the
// server then drops its entry when it sees the ack, and a late duplicate of
// it gets ErrStale instead of running.
func (s *Session) End(seq uint64) (outstanding int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.ack || seq >= s.next || s.ended[seq%s.window] {
		return s.outstanding
	}
	s.outstanding--
	if seq != s.ack {
		s.ended[seq%s.window] = true
		return s.outstanding
	}
	s.ack++
	for s.ack < s.next && s.ended[s.ack%s.window] {
		s.ended[s.ack%s.window] = false
		s.ack++
	}
	s.wakeWaiters()
	return s.outstanding
}

// wakeWaiters wakes as many waiting Begins as the window has free slots,
// first come first. s.mu must be held.
func (s *Session) wakeWaiters() {
	free := s.window - (s.next - s.ack)
	n := 0
	for n < len(s.waiters) && uint64(n) < free {
		s.waiters[n] <- struct{}{} // buffered, and each waiter is woken once per wait
		n++
	}
	if n > 0 {
		k := copy(s.waiters, s.waiters[n:])
		clear(s.waiters[k:])
		s.waiters = s.waiters[:k]
	}
}

// dropWaiter takes wake out of the line and reports whether it was there
// (not woken yet). s.mu must be held.
func (s *Session) dropWaiter(wake chan struct{}) bool {
	for i, w := range s.waiters {
		if w == wake {
			copy(s.waiters[i:], s.waiters[i+1:])
			s.waiters[len(s.waiters)-1] = nil
			s.waiters = s.waiters[:len(s.waiters)-1]
			return true
		}
	}
	return false
}

// Ack returns the first sequence number that has not ended.
func (s *Session) Ack() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ack
}

// Outstanding returns the number of calls begun and not yet ended.
func (s *Session) Outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding
}
