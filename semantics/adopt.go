package semantics

import (
	"context"
	"errors"
	"fmt"
)

// A SessionFinder is a Store that several servers share (a DomainStore,
// say), so that a session opened on one of them may reach another: a
// client resending, to a second server, a call that may have run on a
// first one that no longer answers. A durable table whose store is a
// SessionFinder asks it about a session it does not hold before it refuses
// a request (see Table.Begin), and takes the session over if it is live.
type SessionFinder interface {
	// FindSession reports whether the store holds the session id and
	// the session is live: its lease, counted by the store from the last
	// activity any server committed for it, has not run out. ack is its
	// durable ack. An error means the store could not tell (it cannot
	// reach its database, say); the request is then refused, not run.
	FindSession(ctx context.Context, id ClientID) (ack uint64, live bool, err error)
}

// errNotHeld marks a refusal for a session the table does not hold (never
// opened here, expired, evicted or closed): the request may be of a
// session that a shared store knows.
var errNotHeld = errors.New("semantics: session not held")

// notHeldError is ErrSessionExpired for a session the table does not hold.
type notHeldError struct{}

func (*notHeldError) Error() string        { return ErrSessionExpired.Error() }
func (*notHeldError) Unwrap() error        { return ErrSessionExpired }
func (*notHeldError) Is(target error) bool { return target == errNotHeld }

// adopt asks the table's store, if it is a SessionFinder, about the
// session id, and takes it over if the store reports it live. It reports
// whether the table now holds the session; an error means the store could
// not tell (the request is refused, and wraps ErrRejected) or the table is
// full of sessions with calls running (ErrTooManySessions).
func (t *Table) adopt(ctx context.Context, id ClientID) (bool, error) {
	f, ok := t.store.(SessionFinder)
	if !ok {
		return false, nil
	}
	ack, live, err := f.FindSession(ctx, id)
	switch {
	case err != nil:
		return false, fmt.Errorf("semantics: looking up session %v in the shared store: %w: %v", id, ErrRejected, err)
	case !live:
		return false, nil
	}
	if ack == 0 {
		ack = 1
	}
	now := t.nanos()
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sessions[id]; s != nil {
		// Taken over meanwhile by a concurrent request, or opened: the
		// store's ack still holds.
		t.replyBytes -= s.advance(ack)
		t.settle(s, now)
		return true, nil
	}
	if len(t.sessions) >= t.maxSessions && !t.makeRoom(now) {
		t.stats.TooMany++
		return false, fmt.Errorf("semantics: taking over session %v: %d sessions, each with a call running: %w", id, len(t.sessions), ErrTooManySessions)
	}
	s := &serverSession{id: id, ack: ack, list: onNoList}
	t.sessions[id] = s
	t.settle(s, now)
	t.stats.Adopted++
	return true, nil
}
