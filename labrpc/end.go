package labrpc

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand"
	"reflect"
	"sync"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/gobcheck"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Errors of RoundTrip, each wrapped in its failure class (see package
// semantics): ErrDisconnected and ErrClosed before delivery as not sent, the
// others as maybe executed.
var (
	// ErrDisconnected: the end is disabled, unconnected, partitioned from its
	// server, or the server does not exist. The request was not delivered.
	ErrDisconnected = errors.New("labrpc: end disconnected")
	// ErrRequestDropped: the network lost the request.
	ErrRequestDropped = errors.New("labrpc: request lost")
	// ErrReplyDropped: the network lost the reply.
	ErrReplyDropped = errors.New("labrpc: reply lost")
	// ErrServerDead: the server was deleted or replaced, or the end disabled,
	// while the call was at the server; its reply is never delivered.
	ErrServerDead = errors.New("labrpc: server dead or unreachable before replying")
	// ErrClosed: the network has been cleaned up.
	ErrClosed = errors.New("labrpc: network cleaned up")
)

// ClientEnd is one client's connection point to the network: calls made on
// it go to the server it is connected to. A ClientEnd is safe for concurrent
// use, and it is an rpc.Transport, so rpc.NewClient(end, ...) gives the rpc
// client's failure semantics over the simulated network.
type ClientEnd struct {
	endname interface{}
	net     *Network

	mu    sync.Mutex // protects following
	rng   *rand.Rand // this end's stream of fates
	calls uint64
}

var _ rpc.Transport = (*ClientEnd)(nil)

// Call sends a request and waits for the reply, like the classic lab
// network. svcMeth is "Service.Method"; args travels as gob bytes and the
// reply is gob-decoded into reply, a pointer. Call returns true if a reply
// arrived, false if the request or reply was lost, the end is disconnected,
// the server died, or the call failed (unknown method, undecodable
// arguments, or a handler that returned an error). Failures other than the
// network's faults are logged.
func (e *ClientEnd) Call(svcMeth string, args interface{}, reply interface{}) bool {
	return e.call(context.Background(), svcMeth, nil, args, reply, true, nil) == nil
}

// CallContext is Call that also returns false as soon as ctx ends.
func (e *ClientEnd) CallContext(ctx context.Context, svcMeth string, args interface{}, reply interface{}) bool {
	return e.call(ctx, svcMeth, nil, args, reply, true, nil) == nil
}

// RoundTrip implements rpc.Transport: it sends req once, carrying its
// at-most-once header to the server core, and returns an error with a
// failure class: not sent (disconnected, or ctx ended before delivery),
// maybe executed (request or reply lost, server dead, ctx ended after
// delivery), or the server's own answer (application error or refusal).
func (e *ClientEnd) RoundTrip(ctx context.Context, req *rpc.Request, reply any) error {
	return e.call(ctx, req.ServiceMethod, req.Header, req.Args, reply, false, req)
}

// Close implements rpc.Transport. It does nothing: the network owns its
// ends (see DeleteEnd and Cleanup).
func (e *ClientEnd) Close() error { return nil }

type result struct {
	reply any
	err   error
}

// call is the life of one call. It runs on the caller's goroutine; only the
// handler (and a duplicate delivery) get goroutines of their own.
// rq, if not nil, is the rpc request: its metadata goes to the server and
// the reply's comes back into it.
func (e *ClientEnd) call(ctx context.Context, method string, h *semantics.Header, args, reply any, classic bool, rq *rpc.Request) error {
	n := e.net
	rt := n.route(e.endname)
	if rt.closed {
		return semantics.NotSent(ErrClosed)
	}
	f := e.draw()
	n.count.Add(1)
	ev := Event{End: e.endname, Server: rt.servername, Call: f.call, Method: method}
	step := func(fate Fate, d time.Duration, err error) {
		if n.trace.on.Load() {
			x := ev
			x.Fate, x.Delay = fate, d
			if err != nil {
				x.Detail = err.Error()
			}
			n.record(x)
		}
	}
	fail := func(err error) error {
		if classic {
			log.Printf("labrpc: Call(%q) on end %v: %v", method, e.endname, err)
		}
		step(FateFailed, 0, err)
		return err
	}
	step(FateSent, 0, nil)

	var md rpc.Metadata
	if rq != nil {
		md = rq.Metadata
	}
	snap, size, err := encodeArgs(args)
	if err != nil {
		return fail(fmt.Errorf("labrpc: encoding args of %s: %v: %w", method, err, semantics.ErrRejected))
	}
	n.bytes.Add(int64(size))

	if rt.server == nil {
		d := f.disconnectDelay(rt.longDelays)
		step(FateDisconnected, d, nil)
		if err := n.sleep(ctx, d); err != nil {
			return semantics.NotSent(fmt.Errorf("labrpc: %w", err))
		}
		return semantics.NotSent(ErrDisconnected)
	}
	if err := n.sleep(ctx, rt.link.delay(f.delay)); err != nil {
		step(FateTimedOut, 0, err)
		return semantics.NotSent(fmt.Errorf("labrpc: %w", err))
	}
	if f.dropReq < rt.link.DropRequest {
		step(FateDropped, 0, nil)
		return semantics.MaybeExecuted(ErrRequestDropped)
	}
	if f.dup < rt.link.Duplicate {
		if dupSnap, size, err := snapshot(snap.Interface()); err == nil {
			n.bytes.Add(int64(size))
			step(FateDuplicated, 0, nil)
			dl, _ := ctx.Deadline() // a duplicate carries the caller's deadline too
			e.deliverDuplicate(rt, rt.link.delay(f.dupDelay), method, h, &request{snap: dupSnap, md: md, end: e.endname}, dl)
		}
	}
	step(FateDelivered, rt.link.delay(f.delay), nil)

	// Changes made while the request was on the wire count too: the channel
	// is the one current when the route was taken.
	changed := rt.changed
	rt.server.count.Add(1)
	res := make(chan result, 1)
	deadline, _ := ctx.Deadline()
	r := &request{snap: snap, md: md, end: e.endname}
	n.dispatch(job{server: rt.server, method: method, header: h, req: r, res: res, deadline: deadline})
	var out result
wait:
	for {
		select {
		case out = <-res:
			break wait
		case <-changed:
			dead, next := n.dead(e.endname, &rt)
			if dead {
				step(FateServerDead, 0, nil)
				return semantics.MaybeExecuted(ErrServerDead)
			}
			changed = next
		case <-ctx.Done():
			step(FateTimedOut, 0, ctx.Err())
			return semantics.MaybeExecuted(fmt.Errorf("labrpc: %w", ctx.Err()))
		case <-n.done:
			step(FateTimedOut, 0, ErrClosed)
			return semantics.MaybeExecuted(ErrClosed)
		}
	}
	if dead, _ := n.dead(e.endname, &rt); dead {
		step(FateServerDead, 0, nil)
		return semantics.MaybeExecuted(ErrServerDead)
	}
	if f.dropReply < rt.link.DropReply {
		step(FateReplyDropped, 0, nil)
		return semantics.MaybeExecuted(ErrReplyDropped)
	}
	if rq != nil && rq.ReplyMetadata != nil { // written by Handle before it answered
		rq.ReplyMetadata.Header, rq.ReplyMetadata.Trailer = r.header, r.trailer
	}
	var delay time.Duration
	if rt.longReordering {
		delay = f.reorderDelay()
	}

	if out.err != nil {
		// The server's refusal or the method's error travels back as text
		// with its class.
		code, msg := rpc.EncodeError(out.err)
		if err := n.sleep(ctx, delay); err != nil {
			step(FateTimedOut, delay, err)
			return semantics.MaybeExecuted(fmt.Errorf("labrpc: %w", err))
		}
		n.bytes.Add(int64(len(msg)))
		rerr := rpc.DecodeError(code, msg)
		if classic && !errors.Is(rerr, semantics.ErrApplication) {
			names := rt.server.serviceNames()
			return fail(fmt.Errorf("%w (server %v has services %v)", rerr, rt.servername, names))
		}
		step(FateFailed, delay, rerr)
		return rerr
	}

	if delay > 0 {
		// The reply leaves the server now and arrives later: copy it now.
		held, _, err := encodeReply(out.reply)
		if err != nil {
			return fail(semantics.Unusable(fmt.Errorf("labrpc: %s ran, but its reply could not be encoded: %w", method, err)))
		}
		if err := n.sleep(ctx, delay); err != nil {
			step(FateTimedOut, delay, err)
			return semantics.MaybeExecuted(fmt.Errorf("labrpc: %w", err))
		}
		out.reply = held.Interface()
	}
	size, err = decodeReply(out.reply, reply)
	if err != nil {
		return fail(semantics.Unusable(fmt.Errorf("labrpc: %s ran, but its reply could not be decoded into %T: %w", method, reply, err)))
	}
	n.bytes.Add(int64(size))
	step(FateReplied, delay, nil)
	return nil
}

// deliverDuplicate delivers a second copy of a request after its own delay,
// unless the end or server has gone away meanwhile. Its reply is discarded.
func (e *ClientEnd) deliverDuplicate(rt route, d time.Duration, method string, h *semantics.Header, r *request, deadline time.Time) {
	n := e.net
	n.goBackground(func() {
		if n.sleep(n.ctx, d) != nil {
			return
		}
		if dead, _ := n.dead(e.endname, &rt); dead {
			return
		}
		rt.server.count.Add(1)
		n.dispatch(job{server: rt.server, method: method, header: h, req: r, deadline: deadline})
	})
}

// request is one delivery of a call's arguments to the server core.
type request struct {
	snap  reflect.Value // pointer to this delivery's private gob copy
	moved bool

	md              rpc.Metadata // the caller's metadata
	end             interface{}  // the caller's end name, its peer address
	header, trailer rpc.Metadata // the reply's metadata, set by Handle
}

// DecodeArgs implements rpc.ArgsDecoder. The snapshot is already a gob
// decoding of the caller's args into a fresh value; if the method's type is
// the same it is handed over as is, else it is decoded again into v.
func (r *request) DecodeArgs(v any) error {
	dst := reflect.ValueOf(v)
	if err := gobcheck.CheckType(dst.Type()); err != nil {
		return err
	}
	if !r.moved && dst.Type() == r.snap.Type() && !dst.IsNil() {
		dst.Elem().Set(r.snap.Elem())
		r.moved = true
		return nil
	}
	_, err := copyValue(r.snap, dst)
	return err
}

// encodeArgs makes the request's private copy of args.
func encodeArgs(args any) (reflect.Value, int, error) {
	if err := gobcheck.CheckValue(args); err != nil {
		return reflect.Value{}, 0, err
	}
	return snapshot(args)
}

// encodeReply copies a reply that will be delivered later.
func encodeReply(reply any) (reflect.Value, int, error) {
	if err := gobcheck.CheckValue(reply); err != nil {
		return reflect.Value{}, 0, err
	}
	return snapshot(reply)
}

// decodeReply gob-copies the server's reply into the caller's, with the
// classic decoder's checks on the caller's value.
func decodeReply(src, dst any) (int, error) {
	if err := gobcheck.CheckValue(src); err != nil {
		return 0, err
	}
	if err := gobcheck.CheckValue(dst); err != nil {
		return 0, err
	}
	if err := gobcheck.CheckDefault(dst); err != nil {
		return 0, err
	}
	if dst == nil {
		return 0, errors.New("labrpc: nil reply")
	}
	return copyValue(reflect.ValueOf(src), reflect.ValueOf(dst))
}
