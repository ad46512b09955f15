package rpc

import "context"

// flight is "one in flight, the others wait": an operation (a session
// handshake, a dial) that one goroutine runs while the others that need
// its result wait for it instead of starting their own, each under its own
// context.
//
// A flight is a field of its owner and has no lock of its own: the owner's
// lock guards it, so that joining a flight is decided together with
// whatever else the owner checks under that lock (a session already open,
// a client closed). Who calls what:
//
//   - join and running: anyone, with the owner's lock held;
//   - land: the goroutine that join made the leader, once, with the
//     owner's lock held (so that what the leader publishes beside the
//     result and the flight's end are seen together);
//   - wait, done and result on the *flightRun: anyone, without the lock.
//
// The zero value has nothing in flight.
type flight[T any] struct {
	cur *flightRun[T] // the run in progress, or nil
}

// flightRun is one run of a flight: its result, once done is closed.
type flightRun[T any] struct {
	ch  chan struct{} // closed by land
	val T             // set by land, before ch is closed
	err error         // set by land, before ch is closed
}

// join returns the run in progress, or starts one and reports lead: the
// caller is then the leader, who runs the operation and must land the run,
// whatever happens. The owner's lock must be held.
func (f *flight[T]) join() (run *flightRun[T], lead bool) {
	if f.cur != nil {
		return f.cur, false
	}
	f.cur = &flightRun[T]{ch: make(chan struct{})}
	return f.cur, true
}

// running returns the run in progress, or nil. The owner's lock must be
// held.
func (f *flight[T]) running() *flightRun[T] { return f.cur }

// land ends run, the leader's, with its result: its waiters wake, and the
// next join starts a new run. The owner's lock must be held; the leader
// lands its run exactly once.
func (f *flight[T]) land(run *flightRun[T], val T, err error) {
	run.val, run.err = val, err
	if f.cur == run {
		f.cur = nil
	}
	close(run.ch)
}

// done is closed when the run has landed.
func (r *flightRun[T]) done() <-chan struct{} { return r.ch }

// wait waits for the run to land, or for ctx to end, and reports whether
// it landed.
func (r *flightRun[T]) wait(ctx context.Context) bool {
	select {
	case <-r.ch:
		return true
	case <-ctx.Done():
		select {
		case <-r.ch: // both ready: the result is there, use it
			return true
		default:
			return false
		}
	}
}

// result returns what the run landed with. Call it only once the run has
// landed (wait reported true, or done is closed).
func (r *flightRun[T]) result() (T, error) { return r.val, r.err }
