package rpc

import (
	"time"
)

// inlineWatch is a server's watcher of the requests that run on the
// goroutines that read them (serverConn.runInline). While any such request
// runs, one watcher goroutine (see watcher) looks at the server's
// connections every inline grace; a connection whose inline run is the same
// at two looks in a row has run it for at least a grace, and another
// goroutine takes over reading it, so that the requests behind it (one its
// method may be waiting for) are read and run. The watcher leaves once it
// has found nothing running idleLooks looks in a row, or no connection;
// the next inline run starts a new one.
type inlineWatch struct {
	watcher
}

// connEnded tells the watcher that a connection ended: when it was the
// last, the watcher looks at once, finds none and leaves, so that Close and
// Shutdown need not wait for its timer.
func (w *inlineWatch) connEnded(last bool) {
	if last {
		w.poke()
	}
}

// idleLooks is how many looks in a row find no inline run before the
// watcher leaves.
const idleLooks = 8

// start makes sure a watcher is running. The caller has stored its
// connection's inlineRunning state first (see watcher).
func (w *inlineWatch) start(s *Server) {
	if !w.begin() {
		return
	}
	// The caller's connection is counted in connWG, so the count is above
	// zero: Close and Shutdown, waiting on it, wait for the watcher too.
	s.connWG.Add(1)
	go w.run(s)
}

func (w *inlineWatch) run(s *Server) {
	defer s.connWG.Done()
	var conns []*serverConn
	w.loop(time.Duration(inlineGrace.Load()), idleLooks, nil, func(act bool) sight {
		conns = s.appendConns(conns[:0])
		defer clear(conns)
		switch {
		case len(conns) == 0:
			return sawNone
		case !act:
			return sightOf(anyInline(conns))
		}
		return sightOf(w.look(conns))
	})
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
