package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// sessionManager owns a client's at-most-once sessions with one server (a
// cluster client has one manager per server, each sending its handshakes
// to its own server; Client.Close closes them all at once). It opens them with
// the server's handshake (one handshake at a time, shared by the calls that
// wait for it, each waiting under its own context), hands out sequence
// numbers, moves new calls to a fresh session when a slow call holds the
// current one's window, and forgets sessions the server no longer knows.
// Sessions the client is done with are ended on the server at the next
// handshake, or by Client.Close. The handshake carries the metadata of the
// call that made it (its context's, client interceptors' included), as any
// request does, so that server interceptors can guard it.
//
// Close and a handshake in flight (R14): Close marks the manager closed
// (no handshake starts after that), waits for the handshake in flight, if
// any, for at most its close timeout, and then collects every session to
// end and ends them on the server before the transport closes. A handshake
// that lands after Close marked the manager closed never hands its session
// to a call: while Close waits, the session joins those Close ends; once
// Close has collected them (it gave up waiting), the handshake's leader
// ends its session itself, best effort, if the transport still can.
type sessionManager struct {
	c *Client
	// server is, in a cluster client, the index of the server whose
	// sessions this manager holds (its handshakes go there and nowhere
	// else); -1 for a client of one server.
	server int

	mu        sync.Mutex             // protects following
	cur       *clientSession         // the session new calls use; nil until opened
	retired   []*clientSession       // replaced by cur while calls of theirs were outstanding
	opening   flight[*clientSession] // the handshake in progress
	done      []semantics.ClientID
	closed    bool               // Close began: no handshake starts any more
	collected bool               // Close collected the sessions to end: a handshake landing later ends its own
	stop      context.Context    // ended when Close begins: a handshake in flight stops retrying; made by stopped
	stopNow   context.CancelFunc // ends stop
	opened    uint64
	resets    uint64
	// md is the metadata the latest successful handshake carried: the
	// sessions' ends (_semrpc.Close, sent without a caller's context) carry
	// it too, so that a server whose interceptors let the session open
	// lets it close.
	md Metadata
}

// maxRetired bounds the sessions a client keeps for slow calls once their
// window is full; beyond it new calls wait for a window slot.
const maxRetired = 4

// maxDone bounds the ended sessions waiting to be closed on the server; the
// oldest are left to expire with their lease.
const maxDone = 64

// clientSession is one session and what the server told about it.
type clientSession struct {
	*semantics.Session
	durable bool
	lease   time.Duration
	// heard is when (unix nanoseconds) the latest request that the server
	// admitted into this session left the client: the server keeps the
	// session for at least its lease after that.
	heard atomic.Int64
	// retired is set, under the manager's lock, once new calls must not
	// use the session (replaced or dropped). A call that began on it
	// anyway gives its number back before sending: a retired session with
	// no calls is closed on the server.
	retired atomic.Bool
}

// confirm notes that the server admitted a request of the session sent at
// sent.
func (cs *clientSession) confirm(sent time.Time) {
	n := sent.UnixNano()
	for {
		old := cs.heard.Load()
		if n <= old || cs.heard.CompareAndSwap(old, n) {
			return
		}
	}
}

// mayHaveExpired reports whether the server may have forgotten the session
// by now: its lease, less a margin for the resend's own trip, has passed
// since the server last admitted a request of it.
func (cs *clientSession) mayHaveExpired(now time.Time) bool {
	return now.UnixNano()-cs.heard.Load() >= int64(cs.lease-cs.lease/8)
}

// begin returns the session and header for a new call under policy p, or
// a give-up error labelled with p (the call was not sent).
func (m *sessionManager) begin(ctx context.Context, deadline time.Time, p semantics.Policy) (*clientSession, semantics.Header, error) {
	for {
		cs, err := m.current(ctx, deadline, p)
		if err != nil {
			return nil, semantics.Header{}, err
		}
		if p.Kind() == semantics.KindExactlyOnce && !cs.durable {
			return nil, semantics.Header{}, semantics.GiveUp(p.Kind(), semantics.Permanent(
				reject(CodeNotDurable, "rpc: exactly-once call refused: the server keeps no durable completion records (%v)", semantics.ErrNotDurable)))
		}
		h, ok := cs.TryBegin()
		if !ok {
			if m.retire(cs) {
				continue // a fresh session takes the new calls
			}
			wctx, cancel := withRetryDeadline(ctx, deadline)
			h, err = cs.Begin(wctx)
			cancel()
			if err != nil {
				return nil, semantics.Header{}, semantics.GiveUp(p.Kind(), semantics.NotSent(fmt.Errorf(
					"rpc: waiting for a window slot (%d calls outstanding, window %d): %w", cs.Outstanding(), cs.Window(), wctx.Err())))
			}
		}
		if cs.retired.Load() {
			m.end(cs, h.Seq) // replaced meanwhile: never sent, so safe to give back
			continue
		}
		return cs, h, nil
	}
}

// retire replaces cs as the current session if it still is, and reports
// whether new calls should try again (with a fresh session).
func (m *sessionManager) retire(cs *clientSession) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != cs {
		// Replaced or dropped meanwhile: try again with the current one.
		return m.cur != nil || m.opening.running() != nil || cs.retired.Load()
	}
	if len(m.retired) >= maxRetired {
		return false
	}
	cs.retired.Store(true)
	m.cur = nil
	if cs.Outstanding() == 0 {
		// Its last call ended before it was retired: end needs no more.
		m.addDone(cs.ID())
		return true
	}
	m.retired = append(m.retired, cs)
	return true
}

// end ends the call seq of cs. A retired session whose calls have all ended
// is closed on the server with the next handshake.
func (m *sessionManager) end(cs *clientSession, seq uint64) {
	if cs.End(seq) > 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.retired {
		if r == cs && cs.Outstanding() == 0 {
			m.retired = append(m.retired[:i], m.retired[i+1:]...)
			m.addDone(cs.ID())
			return
		}
	}
}

// addDone queues id to be closed on the server. m.mu must be held.
func (m *sessionManager) addDone(id semantics.ClientID) {
	if len(m.done) >= maxDone {
		m.done = m.done[1:]
	}
	m.done = append(m.done, id)
}

// drop forgets cs: the server refused it as unknown or from another epoch.
func (m *sessionManager) drop(cs *clientSession) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs.retired.Store(true)
	if m.cur == cs {
		m.cur = nil
		m.resets++
		return
	}
	for i, r := range m.retired {
		if r == cs {
			m.retired = append(m.retired[:i], m.retired[i+1:]...)
			m.resets++
			return
		}
	}
}

// current returns the session new calls use, opening one if there is none.
func (m *sessionManager) current(ctx context.Context, deadline time.Time, p semantics.Policy) (*clientSession, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, semantics.GiveUp(p.Kind(), errClosed())
		}
		if cs := m.cur; cs != nil {
			m.mu.Unlock()
			return cs, nil
		}
		run, lead := m.opening.join()
		if lead {
			closing := m.done
			m.done = nil
			m.mu.Unlock()
			return m.lead(ctx, deadline, p, run, closing)
		}
		m.mu.Unlock()
		wctx, cancel := withRetryDeadline(ctx, deadline)
		landed := run.wait(wctx)
		cancel()
		if !landed {
			return nil, semantics.GiveUp(p.Kind(), semantics.NotSent(
				fmt.Errorf("rpc: waiting for the session handshake: %w", wctx.Err())))
		}
		cs, err := run.result()
		if err == nil {
			return cs, nil
		}
		if ctx.Err() != nil || semantics.IsPermanent(err) || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return nil, relabel(err, p.Kind())
		}
		// The handshake failed under its caller's context; try under ours.
	}
}

// lead runs the handshake of run, which the caller leads, and lands it.
// closing are the sessions the handshake ends on the server. A handshake
// that lands once Close began hands its session to no call (see
// sessionManager).
func (m *sessionManager) lead(ctx context.Context, deadline time.Time, p semantics.Policy, run *flightRun[*clientSession], closing []semantics.ClientID) (*clientSession, error) {
	cs, md, err := m.open(ctx, deadline, p, closing)
	m.mu.Lock()
	var (
		orphans []semantics.ClientID // to end here: Close no longer will
		endMD   Metadata
	)
	switch {
	case m.closed:
		ends := closing
		if err == nil {
			ends = []semantics.ClientID{cs.ID()} // closing were ended by the handshake
			if m.md == nil {
				m.md = md.Copy() // the sessions' end carries a handshake's metadata
			}
		}
		cs, err = nil, semantics.GiveUp(p.Kind(), errClosed())
		if m.collected {
			orphans, endMD = ends, md
		} else {
			for _, id := range ends {
				m.addDone(id) // Close, waiting for this handshake, ends them
			}
		}
	case err == nil:
		m.cur = cs
		m.md = md.Copy() // the caller's map may change after its call
		m.opened++
	default:
		for _, id := range closing {
			m.addDone(id)
		}
	}
	m.opening.land(run, cs, err)
	m.mu.Unlock()
	if len(orphans) > 0 {
		m.closeOnServer(orphans, endMD, closeTimeout)
	}
	return cs, err
}

// stopped returns the context that Close ends when it begins. m.mu must
// be held.
func (m *sessionManager) stopped() context.Context {
	if m.stop == nil {
		m.stop, m.stopNow = context.WithCancel(context.Background())
	}
	return m.stop
}

// open runs the handshake under p's retries: the caller's call was never
// sent, whatever happened to the handshake, so its failure is a not-sent
// give-up labelled with p. It returns the session and the metadata the
// handshake carried (ctx's).
func (m *sessionManager) open(ctx context.Context, deadline time.Time, p semantics.Policy, closing []semantics.ClientID) (*clientSession, Metadata, error) {
	var (
		rep  OpenReply
		sent time.Time
	)
	md, err := outgoingMetadata(ctx, openMethod)
	if err != nil {
		return nil, nil, semantics.GiveUp(p.Kind(), err)
	}
	_, hasDeadline := ctx.Deadline()
	req := Request{ServiceMethod: openMethod, Args: &OpenArgs{Version: 2, Close: closing}, WaitForReady: hasDeadline, Metadata: md}
	// Once Close begins no attempt starts, but the attempt under way runs
	// on under the caller's ctx: the server may be opening its session,
	// and Close waits for the answer to end it.
	m.mu.Lock()
	stop := m.stopped()
	m.mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(stop, cancel)()
	err = m.c.runner.RunUntil(rctx, deadline, p, func(context.Context) error {
		sent = time.Now()
		req.Timeout = remaining(ctx, sent)
		err := m.send(ctx, &req, &rep)
		switch {
		case err == nil && rep.Client.IsZero():
			return semantics.Permanent(reject(CodeRejected, "rpc: the server predates explicit at-most-once sessions (no session id in its handshake)"))
		case errors.Is(err, ErrUnknownMethod):
			// A server without the handshake (a stock net/rpc server, say).
			return semantics.Permanent(reject(CodeUnknownMethod, "rpc: server does not support at-most-once calls: %v", err))
		case errors.Is(err, semantics.ErrApplication):
			// An error answer: a server interceptor refused the handshake
			// with an error that does not wrap ErrRejected (or the
			// server's _semrpc.Open is a method of its own). No session.
			return semantics.Permanent(reject(CodeRejected, "rpc: the server refused the at-most-once session handshake: %v", err))
		}
		return err
	})
	if err != nil {
		var gu *semantics.GiveUpError
		if errors.As(err, &gu) {
			cause := semantics.NotSent(&handshakeError{gu})
			if semantics.IsPermanent(err) {
				cause = semantics.Permanent(cause)
			}
			return nil, nil, semantics.GiveUp(p.Kind(), cause)
		}
		return nil, nil, semantics.GiveUp(p.Kind(), semantics.NotSent(fmt.Errorf("rpc: opening a session for the call: %v", err)))
	}
	window := semantics.WindowOf(p)
	if rep.MaxCalls > 0 && window > rep.MaxCalls {
		window = rep.MaxCalls // agreed with the server's per-session cap
	}
	cs := &clientSession{
		Session: semantics.NewSessionWithID(rep.Client, rep.Epoch, window),
		durable: rep.Durable,
		lease:   time.Duration(rep.Lease),
	}
	if cs.lease <= 0 {
		cs.lease = semantics.DefaultLease
	}
	cs.confirm(sent)
	return cs, md, nil
}

// handshakeError is a failed session handshake inside the give-up of the
// call that needed it. It shows the handshake's attempts and lets errors.Is
// and errors.As reach their causes, but not the handshake's own verdict:
// the call itself was never sent.
type handshakeError struct{ hs *semantics.GiveUpError }

func (e *handshakeError) Error() string {
	return "rpc: opening a session for the call: " + e.hs.Error()
}
func (e *handshakeError) Unwrap() []error { return e.hs.Unwrap() }

// send gives a request of the manager's own (a handshake, an end of
// sessions) to the transport: in a cluster, a handshake goes to the
// manager's server only.
func (m *sessionManager) send(ctx context.Context, req *Request, reply any) error {
	if ct, ok := m.c.t.(*clusterTransport); ok && m.server >= 0 && req.ServiceMethod == openMethod {
		return ct.openOn(ctx, m.server, req, reply)
	}
	return m.c.t.RoundTrip(ctx, req, reply)
}

// closeAll ends every session of the client on its server, best effort:
// it waits at most timeout for the handshakes in flight (all managers'
// together), and then at most timeout to end the sessions (see
// sessionManager).
func closeAll(ms []*sessionManager, timeout time.Duration) {
	if len(ms) == 0 {
		return
	}
	runs := make([]*flightRun[*clientSession], 0, len(ms))
	for _, m := range ms {
		if run := m.stopAll(); run != nil {
			runs = append(runs, run)
		}
	}
	if len(runs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		for _, run := range runs {
			run.wait(ctx)
		}
		cancel()
	}
	var (
		ids []semantics.ClientID
		md  Metadata
	)
	for _, m := range ms {
		mids, mmd := m.collect()
		ids = append(ids, mids...)
		if md == nil {
			md = mmd
		}
	}
	ms[0].closeOnServer(ids, md, timeout)
}

// stopAll marks m closed (no handshake starts any more) and returns the
// handshake in flight, if any.
func (m *sessionManager) stopAll() *flightRun[*clientSession] {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.stopped()
	m.stopNow()
	return m.opening.running()
}

// collect takes every session of m to end, once its handshake in flight
// landed or was given up on, and the metadata to end them with.
func (m *sessionManager) collect() ([]semantics.ClientID, Metadata) {
	m.mu.Lock()
	m.collected = true
	ids := append([]semantics.ClientID(nil), m.done...)
	if m.cur != nil {
		m.cur.retired.Store(true)
		ids = append(ids, m.cur.ID())
	}
	for _, r := range m.retired {
		r.retired.Store(true)
		ids = append(ids, r.ID())
	}
	m.cur, m.retired, m.done = nil, nil, nil
	md := m.md
	m.mu.Unlock()
	return ids, md
}

// closeOnServer ends the sessions ids on the server, best effort, within
// timeout, with the metadata md (a handshake's).
func (m *sessionManager) closeOnServer(ids []semantics.ClientID, md Metadata, timeout time.Duration) {
	if ct, ok := m.c.t.(*clusterTransport); len(ids) == 0 && (!ok || !ct.closesPending()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rep CloseReply
	_ = m.send(ctx, &Request{ServiceMethod: closeMethod, Args: &CloseArgs{IDs: ids}, Timeout: timeout, Metadata: md}, &rep)
}

// stats returns how many sessions were opened and dropped.
func (m *sessionManager) stats() (opened, resets uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opened, m.resets
}

// remaining is how long ctx still runs after now, 0 for no deadline.
func remaining(ctx context.Context, now time.Time) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(d.Sub(now), time.Nanosecond)
	}
	return 0
}

// relabel returns a handshake give-up made under another call's policy
// with this call's policy, so that its error names the policy it ran under.
func relabel(err error, kind semantics.Kind) error {
	var gu *semantics.GiveUpError
	if errors.As(err, &gu) && gu.Policy != kind {
		cp := *gu
		cp.Policy = kind
		return &cp
	}
	return err
}

// withRetryDeadline bounds ctx by a call's retry deadline, for the waits of
// a call that has not been sent (a window slot, another call's handshake):
// they must end with the call's retries. Zero deadline: ctx as it is.
func withRetryDeadline(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline)
}
