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

	mu          sync.Mutex // protects following
	rng         *rand.Rand // this end's stream of fates
	calls       uint64
	from        interface{} // the server that calls on it, once known (sender.go)
	senderKnown bool
	senderTries int
}

var _ rpc.Transport = (*ClientEnd)(nil)

// Call sends a request and waits for the reply, like the classic lab
// network. svcMeth is "Service.Method"; args travels as gob bytes and the
// reply is gob-decoded into reply, a pointer. Call returns true if a reply
// arrived, false if the request or reply was lost, the end is disconnected,
// the server died, or the call failed (undecodable arguments, which are
// logged, or a handler that returned an error). As in the classic network,
// a mistake that a false would hide crashes instead: Call panics on an
// unknown service or method, naming the server's methods, and a panic in
// the handler is not recovered, so the test dies with the handler's stack.
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

// A call goes through three phases, each a method of callState: send (the
// request crosses the network, or does not), deliver (the server runs it,
// or goes away first) and reply (the answer crosses back, or does not).
// A phase that ends the call returns its ending; finish records that
// ending once (trace, and the classic network's log line or crash) and
// turns it into Call's result.

// callState is one call on its way through the phases. It lives on the
// caller's goroutine.
type callState struct {
	e       *ClientEnd
	ctx     context.Context
	method  string
	header  *semantics.Header
	classic bool // ClientEnd.Call: log failures, crash on panics and unknown methods
	rt      route
	f       fate
	snap    reflect.Value // the request's private copy of args
	rq      *rpc.Request  // the rpc request (RoundTrip), or nil: its metadata goes to the server, the reply's comes back into it
	md      rpc.Metadata  // the caller's metadata
	r       *request      // the delivery the server answers
	done    *delivery     // r's delivery once the worker has answered: released when the call ends

	tracing    bool          // the trace was on when the call started
	sent       time.Duration // when the call started, if tracing
	delivered  time.Duration // when the request reached the server, if tracing
	reached    bool          // the request reached the server
	duplicated bool          // a second copy was sent
	reqDelay   time.Duration // the request's delay
	held       bool          // long reordering held the reply back
	args       string        // the args' summary, if tracing
	from       interface{}   // the server that calls, if tracing and known
}

// ending is how a call ended: the fate, the extra delay it implied and the
// error returned (nil for FateReplied).
type ending struct {
	fate  Fate
	delay time.Duration
	err   error
}

// call is the life of one call. rq, if not nil, is the rpc request (from
// RoundTrip): its metadata goes to the server and the reply's comes back
// into it.
func (e *ClientEnd) call(ctx context.Context, method string, h *semantics.Header, args, reply any, classic bool, rq *rpc.Request) error {
	n := e.net
	n.checkBubble("a call")
	c := callState{e: e, ctx: ctx, method: method, header: h, classic: classic, rq: rq}
	if rq != nil {
		c.md = rq.Metadata
	}
	c.rt = n.route(e.endname)
	if c.rt.closed {
		return semantics.NotSent(ErrClosed)
	}
	c.f = e.draw()
	n.count.Add(1)
	if n.trace.on.Load() {
		c.begin(args)
	}
	end, ok := c.send(args)
	if ok {
		var out result
		if out, end, ok = c.deliver(); ok {
			end = c.reply(out, reply)
		}
	}
	return c.finish(end, reply)
}

// begin records the start of a traced call.
func (c *callState) begin(args any) {
	n := c.e.net
	c.tracing = true
	c.sent = n.now()
	c.args = n.trace.summarize(c.method, args)
	c.from = c.e.sender()
	n.record(Event{Kind: EventSent, At: c.sent, End: c.e.endname, From: c.from, Server: c.rt.servername,
		Call: c.f.call, Method: c.method, Args: c.args})
}

// send carries the request to the server. ok is true if it arrived, else
// end says why not.
func (c *callState) send(args any) (end ending, ok bool) {
	n, rt := c.e.net, &c.rt
	snap, size, err := encodeArgs(args)
	if err != nil {
		return ending{fate: FateFailed, err: fmt.Errorf("labrpc: encoding args of %s: %v: %w", c.method, err, semantics.ErrRejected)}, false
	}
	n.bytes.Add(int64(size))
	c.snap = snap
	if rt.server == nil {
		d := max(c.f.disconnectDelay(rt.longDelays), rt.latency)
		if err := n.sleep(c.ctx, d); err != nil {
			return ending{fate: FateTimedOut, delay: d, err: semantics.NotSent(fmt.Errorf("labrpc: %w", err))}, false
		}
		return ending{fate: FateDisconnected, delay: d, err: semantics.NotSent(ErrDisconnected)}, false
	}
	c.reqDelay = max(rt.link.delay(c.f.delay), rt.latency)
	if err := n.sleep(c.ctx, c.reqDelay); err != nil {
		return ending{fate: FateTimedOut, err: semantics.NotSent(fmt.Errorf("labrpc: %w", err))}, false
	}
	if c.f.dropReq < rt.link.DropRequest {
		return ending{fate: FateDropped, err: semantics.MaybeExecuted(ErrRequestDropped)}, false
	}
	if c.f.dup < rt.link.Duplicate {
		if dupSnap, size, err := snapshot(snap.Interface()); err == nil {
			n.bytes.Add(int64(size))
			c.duplicated = true
			dl, _ := c.ctx.Deadline() // a duplicate carries the caller's deadline too
			c.e.deliverDuplicate(*rt, max(rt.link.delay(c.f.dupDelay), rt.latency), c.method, c.header,
				&request{snap: dupSnap, md: c.md, end: c.e.endname}, dl, c.classic)
		}
	}
	c.reached = true
	if c.tracing {
		c.delivered = n.now()
	}
	return ending{}, true
}

// deliver runs the request at the server and waits for its answer. ok is
// false if the caller stopped waiting first (end says why).
func (c *callState) deliver() (out result, end ending, ok bool) {
	n, rt := c.e.net, &c.rt
	// Changes made while the request was on the wire count too: the channel
	// is the one current when the route was taken.
	changed := rt.changed
	rt.server.count.Add(1)
	d := n.newDelivery()
	deadline, _ := c.ctx.Deadline()
	d.req = request{snap: c.snap, md: c.md, end: c.e.endname}
	c.r = &d.req
	n.dispatch(job{server: rt.server, method: c.method, header: c.header, req: c.r,
		res: d.res, deadline: deadline, crash: c.classic})
	for {
		select {
		case out = <-d.res:
			// The worker is done with d: the reply metadata is read from
			// c.r in reply, so d goes back to the pool after the call.
			c.done = d
			if c.changedSince(changed) {
				if dead, _ := n.dead(c.e.endname, rt); dead {
					return out, ending{fate: FateServerDead, err: semantics.MaybeExecuted(ErrServerDead)}, false
				}
			}
			return out, ending{}, true
		case <-changed:
			dead, next := n.dead(c.e.endname, rt)
			if dead {
				return out, ending{fate: FateServerDead, err: semantics.MaybeExecuted(ErrServerDead)}, false
			}
			changed = next
		case <-c.ctx.Done():
			return out, ending{fate: FateTimedOut, err: semantics.MaybeExecuted(fmt.Errorf("labrpc: %w", c.ctx.Err()))}, false
		case <-n.done:
			return out, ending{fate: FateTimedOut, err: semantics.MaybeExecuted(ErrClosed)}, false
		}
	}
}

// reply carries the server's answer back to the caller and decodes it into
// reply.
func (c *callState) reply(out result, reply any) ending {
	n, rt := c.e.net, &c.rt
	if c.f.dropReply < rt.link.DropReply {
		return ending{fate: FateReplyDropped, err: semantics.MaybeExecuted(ErrReplyDropped)}
	}
	if c.rq != nil && c.rq.ReplyMetadata != nil { // written by Handle before it answered
		c.rq.ReplyMetadata.Header, c.rq.ReplyMetadata.Trailer = c.r.header, c.r.trailer
	}
	var delay time.Duration
	if rt.longReordering {
		delay = c.f.reorderDelay()
		c.held = delay > 0
	}
	delay = max(delay, rt.latency)

	if out.err != nil {
		// The server's refusal or the method's error travels back as text
		// with its class.
		code, msg := rpc.EncodeError(out.err)
		if err := n.sleep(c.ctx, delay); err != nil {
			return ending{fate: FateTimedOut, delay: delay, err: semantics.MaybeExecuted(fmt.Errorf("labrpc: %w", err))}
		}
		n.bytes.Add(int64(len(msg)))
		return ending{fate: FateFailed, delay: delay, err: rpc.DecodeError(code, msg)}
	}
	if delay > 0 {
		// The reply leaves the server now and arrives later: copy it now.
		held, _, err := encodeReply(out.reply)
		if err != nil {
			return ending{fate: FateFailed, err: semantics.Unusable(fmt.Errorf("labrpc: %s ran, but its reply could not be encoded: %w", c.method, err))}
		}
		if err := n.sleep(c.ctx, delay); err != nil {
			return ending{fate: FateTimedOut, delay: delay, err: semantics.MaybeExecuted(fmt.Errorf("labrpc: %w", err))}
		}
		out.reply = held.Interface()
	}
	size, err := decodeReply(out.reply, reply)
	if err != nil {
		return ending{fate: FateFailed, delay: delay, err: semantics.Unusable(fmt.Errorf("labrpc: %s ran, but its reply could not be decoded into %T: %w", c.method, reply, err))}
	}
	n.bytes.Add(int64(size))
	return ending{fate: FateReplied, delay: delay}
}

// finish records the call's ending and returns its error. A classic call
// (ClientEnd.Call) logs failures that are not the network's faults and,
// like the classic network, crashes on a call to an unknown service or
// method, naming the methods the server has.
func (c *callState) finish(end ending, reply any) error {
	n := c.e.net
	if c.done != nil {
		c.r = nil
		n.release(c.done)
		c.done = nil
	}
	if c.tracing && n.trace.on.Load() {
		ev := Event{Kind: EventEnded, At: n.now(), End: c.e.endname, From: c.from, Server: c.rt.servername,
			Call: c.f.call, Method: c.method, Fate: end.fate, Sent: c.sent,
			Reached: c.reached, Delivered: c.delivered, Duplicated: c.duplicated, Held: c.held,
			Delay: c.reqDelay, ReplyDelay: end.delay, Args: c.args}
		if end.err != nil {
			ev.Detail = end.err.Error()
		}
		if end.fate == FateReplied {
			ev.Reply = n.trace.summarize(c.method, reply)
		}
		n.record(ev)
	}
	if !c.classic || end.fate != FateFailed {
		return end.err
	}
	if errors.Is(end.err, rpc.ErrUnknownMethod) {
		panic(fmt.Sprintf("labrpc: Call(%q) on end %v: %v; server %v has %s",
			c.method, c.e.endname, end.err, c.rt.servername, c.rt.server.methodList()))
	}
	if !errors.Is(end.err, semantics.ErrApplication) {
		log.Printf("labrpc: Call(%q) on end %v: %v", c.method, c.e.endname, end.err)
	}
	return end.err
}

// deliverDuplicate delivers a second copy of a request after its own delay,
// unless the end or server has gone away meanwhile. Its reply is discarded.
func (e *ClientEnd) deliverDuplicate(rt route, d time.Duration, method string, h *semantics.Header, r *request, deadline time.Time, crash bool) {
	n := e.net
	n.goBackground(func() {
		if n.sleep(n.ctx, d) != nil {
			return
		}
		if dead, _ := n.dead(e.endname, &rt); dead {
			return
		}
		rt.server.count.Add(1)
		n.dispatch(job{server: rt.server, method: method, header: h, req: r, deadline: deadline, crash: crash})
	})
}

// changedSince reports whether the topology has changed since changed was
// current. Without a change, nothing that dead checks can have moved: the
// route and the channel were read under the same lock.
func (c *callState) changedSince(changed <-chan struct{}) bool {
	select {
	case <-changed:
		return true
	default:
		return false
	}
}

// delivery is what a call shares with the worker that runs it: the
// request and the channel its answer comes back on. A call that received
// the answer returns its delivery to the network's pool when it ends, since the
// worker sends exactly once and is then done with it; a call that stopped
// waiting first leaves it to the worker and the garbage collector.
type delivery struct {
	req request
	res chan result // buffered, 1
}

// newDelivery takes a delivery from the network's pool. The pool is the
// network's, not the package's: a channel made in a synctest bubble
// belongs to it, and so does the network.
func (n *Network) newDelivery() *delivery {
	if d, ok := n.deliveries.Get().(*delivery); ok {
		return d
	}
	return &delivery{res: make(chan result, 1)}
}

// release returns d to the network's pool, cleared, unless a method's
// context may still refer to its request.
func (n *Network) release(d *delivery) {
	if d.req.exposed {
		return
	}
	d.req = request{}
	n.deliveries.Put(d)
}

// request is one delivery of a call's arguments to the server core.
type request struct {
	snap  reflect.Value // pointer to this delivery's private gob copy
	moved bool

	md              rpc.Metadata // the caller's metadata
	end             interface{}  // the caller's end name, its peer address
	header, trailer rpc.Metadata // the reply's metadata, set by Handle
	exposed         bool         // a method's context refers to it (SetReplyMetadata)
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
