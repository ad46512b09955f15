package labrpc

import (
	"context"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Handlers run on worker goroutines so that a caller can stop waiting for a
// handler that never returns (the server was deleted, the caller's context
// ended). Workers are reused: a fresh goroutine per call would pay for
// growing its stack through reflect and gob every time. A worker waiting
// for work is counted in Network.bg, so Cleanup waits for idle workers to
// exit; a worker inside a handler is not, since user code may block forever.

// maxIdleWorkers bounds the workers kept waiting for work after a burst of
// concurrent calls; beyond it a worker exits when its handler returns.
const maxIdleWorkers = 256

// job is one delivery of a request to a server.
type job struct {
	server *Server
	method string
	header *semantics.Header
	req    *request
	res    chan<- result // buffered; nil for a duplicate whose reply is discarded
	// deadline is the caller's, which ends the method's context; zero for
	// none.
	deadline time.Time
	// crash lets a panic in the handler crash the program (ClientEnd.Call,
	// as the classic network does) instead of becoming an error.
	crash bool
}

func (j job) run(n *Network) {
	ctx := n.ctx
	if j.crash {
		ctx = n.crashCtx
	}
	if !j.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, j.deadline)
		defer cancel()
	}
	r, err := j.server.core.Handle(ctx, j.method, j.header, j.req)
	if j.res != nil {
		j.res <- result{r, err}
	}
}

// dispatch runs j on an idle worker, or on a new one; after Cleanup, on
// none (the caller is released by the closed network).
func (n *Network) dispatch(j job) {
	if n.ctx.Err() != nil {
		return
	}
	select {
	case n.work <- j:
	default:
		go n.worker(j)
	}
}

func (n *Network) worker(j job) {
	for {
		j.run(n)
		if n.idle.Add(1) > maxIdleWorkers {
			n.idle.Add(-1)
			return
		}
		n.mu.RLock()
		if n.closed {
			n.mu.RUnlock()
			n.idle.Add(-1)
			return
		}
		n.bg.Add(1) // idle from now on; Cleanup waits for us
		n.mu.RUnlock()
		select {
		case j = <-n.work:
			n.idle.Add(-1)
			n.bg.Done()
			if n.ctx.Err() != nil { // Cleanup raced the hand-off: run nothing
				return
			}
		case <-n.done:
			n.idle.Add(-1)
			n.bg.Done()
			return
		}
	}
}
