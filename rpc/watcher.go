package rpc

import (
	"sync/atomic"
	"time"
)

// watcher is a goroutine that looks at a set of things every so often,
// runs only while there is something to look at, and costs nothing
// otherwise: a client's idle watcher (idlewatch.go) and a server's inline
// watcher (inlinewatch.go) are each one. A per-item timer would do the
// same with less delay, but arming a timer while another thread sleeps in
// the network poller wakes that thread, once per item; the watcher's own
// timer fires once per look.
//
// What starts it must set the state it will look at first, then call
// begin: a watcher that is leaving looks once more after it clears on, so
// between the two, one sees the other.
type watcher struct {
	on   atomic.Bool   // a watcher runs (or is about to leave)
	kick chan struct{} // buffered, or nil: receives when the watcher should look at once
}

// begin reports whether the caller is to start the watcher's goroutine
// (then it runs loop on it): none was running.
func (w *watcher) begin() bool {
	return !w.on.Load() && w.on.CompareAndSwap(false, true)
}

// poke makes a running watcher look at once.
func (w *watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// sight is what one look of a watcher found.
type sight int8

const (
	sawNothing sight = iota // nothing to watch now
	sawSome                 // something to watch
	sawNone                 // nothing left that could need watching: leave now
)

// loop looks every interval until stop is closed, or until quiet looks in
// a row found nothing to watch (or one found nothing left at all).
// look(act) reports what it found; with act it also does what a look does
// (it acts on what it saw at the last look), without act it only looks:
// that is the look the watcher takes after it cleared on, before it
// leaves.
func (w *watcher) loop(interval time.Duration, quiet int, stop <-chan struct{}, look func(act bool) sight) {
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for idle := 0; ; {
		select {
		case <-timer.C:
		case <-w.kick:
			timer.Stop()
		case <-stop:
			return
		}
		if saw := look(true); saw == sawSome {
			idle = 0
		} else if idle++; idle >= quiet || saw == sawNone {
			w.on.Store(false)
			// Something that began after this look and saw on still set
			// started no watcher: look again, and stay if it is there.
			if look(false) != sawSome || !w.on.CompareAndSwap(false, true) {
				return
			}
			idle = 0
		}
		timer.Reset(interval)
	}
}

// sightOf is sawSome when some is true, else sawNothing.
func sightOf(some bool) sight {
	if some {
		return sawSome
	}
	return sawNothing
}
