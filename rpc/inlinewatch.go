package rpc

import (
	"sync/atomic"
	"time"
)

// inlineWatch is a server's watcher of the requests that run on the
// goroutines that read them (serverConn.runInline). While any such request
// runs, one watcher goroutine looks at the server's connections every
// inline grace; a connection whose inline run is the same at two looks in a
// row has run it for at least a grace, and another goroutine takes over
// reading it, so that the requests behind it (one its method may be
// waiting for) are read and run.
//
// A timer per request would do the same with less delay, but arming a
// timer while another thread sleeps in the network poller wakes that
// thread, once per request: on a sequential call that cost more than the
// goroutine switch the inline run saves. The watcher's own timer fires
// once per grace, not per request, and the watcher leaves once it has found
// nothing running a few looks in a row; the next inline run starts a new
// one.
type inlineWatch struct {
	on   atomic.Bool   // a watcher is looking (or about to leave)
	kick chan struct{} // buffered: the last connection ended, look now
}

// connEnded tells the watcher that a connection ended: when it was the
// last, the watcher looks at once, finds none and leaves, so that Close and
// Shutdown need not wait for its timer.
func (w *inlineWatch) connEnded(last bool) {
	if last {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// idleLooks is how many looks in a row find no inline run before the
// watcher leaves.
const idleLooks = 8

// start makes sure a watcher is running. The caller has stored its
// connection's inlineRunning state first: a watcher that is leaving looks
// once more after it clears on, so between the two, one sees the other.
func (w *inlineWatch) start(s *Server) {
	if w.on.Load() || !w.on.CompareAndSwap(false, true) {
		return
	}
	// The caller's connection is counted in connWG, so the count is above
	// zero: Close and Shutdown, waiting on it, wait for the watcher too.
	s.connWG.Add(1)
	go w.run(s)
}

func (w *inlineWatch) run(s *Server) {
	defer s.connWG.Done()
	grace := time.Duration(inlineGrace.Load())
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var conns []*serverConn
	for idle := 0; ; {
		select {
		case <-timer.C:
		case <-w.kick:
			timer.Stop()
		}
		conns = s.appendConns(conns[:0])
		if w.look(conns) {
			idle = 0
		} else if idle++; idle >= idleLooks || len(conns) == 0 {
			w.on.Store(false)
			// A run that started after this look and saw on still set
			// started no watcher: look again (without handing off).
			if !anyInline(s.appendConns(conns[:0])) || !w.on.CompareAndSwap(false, true) {
				clear(conns)
				return
			}
			idle = 0
		}
		clear(conns[len(conns):cap(conns)])
		timer.Reset(grace)
	}
}

// look hands off reading on every connection whose inline run is the one
// it saw at the last look, and reports whether any request was running
// inline.
func (w *inlineWatch) look(conns []*serverConn) (running bool) {
	for _, c := range conns {
		st := c.inline.Load()
		if st&3 != inlineRunning {
			c.seen = 0
			continue
		}
		running = true
		if st == c.seen {
			c.takeOver(st)
			c.seen = 0
			continue
		}
		c.seen = st
	}
	return running
}

func anyInline(conns []*serverConn) bool {
	for _, c := range conns {
		if c.inline.Load()&3 == inlineRunning {
			return true
		}
	}
	return false
}

// appendConns appends the server's gob connections to conns.
func (s *Server) appendConns(conns []*serverConn) []*serverConn {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}
