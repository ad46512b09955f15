package rpc

import (
	"sync/atomic"
	"time"
)

// defaultIdleLook is how often a transport's idle watcher looks at its
// connections.
const defaultIdleLook = 10 * time.Millisecond

// idleLook is defaultIdleLook, which tests may change (nanoseconds); each
// watcher reads it when it starts.
var idleLook atomic.Int64

func init() { idleLook.Store(int64(defaultIdleLook)) }

// watchIdle runs while the transport has a connection that nobody reads.
// Such a connection expects no reply, and a caller finds out before it
// sends whether the server closed it or said it is going away (see
// register); but until then the connection stays open, and a server
// shutting down waits for its clients to close their connections (up to a
// grace). So a connection found idle at two looks in a row (idle for
// idleLook at least: 10-20 ms) gets a reader goroutine, which reads what
// comes and closes the connection when the server ends it. The next call
// on it hands off its reply as before; once no call is pending the reader
// leaves and callers read again.
//
// The watcher leaves when two looks in a row find no idle connection; the
// next connection to go idle starts one again.
func (t *tcpTransport) watchIdle() {
	defer t.readers.Done()
	var conns []*tcpConn
	t.idleWatch.loop(time.Duration(idleLook.Load()), 2, t.closing, func(act bool) sight {
		conns = t.appendConns(conns[:0])
		any := t.lookIdle(conns, act)
		clear(conns)
		return sightOf(any)
	})
}

// lookIdle reports whether any of conns is idle; with start, it moves each
// idle connection one look on: seen once, then given a reader goroutine.
func (t *tcpTransport) lookIdle(conns []*tcpConn, start bool) (any bool) {
	for _, c := range conns {
		c.mu.Lock()
		if c.read == readNone || c.read == readNoneSeen {
			any = true
			if start {
				if c.read == readNoneSeen {
					c.startReader()
				} else {
					c.setRead(readNoneSeen)
				}
			}
		}
		c.mu.Unlock()
	}
	return any
}

// watchIdleConns makes sure the idle watcher runs, for a connection that
// just went idle.
func (t *tcpTransport) watchIdleConns() {
	if t.idleWatch.begin() {
		t.readers.Add(1) // as in startReader: Close waits for the watcher
		go t.watchIdle()
	}
}
