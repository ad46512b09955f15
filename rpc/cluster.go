package rpc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/semrpc/semrpc/semantics"
)

// Balancer chooses which server of a cluster (see DialCluster) gets each
// call.
type Balancer int

const (
	// LeastOutstanding sends each call to the server with the fewest of
	// this client's calls in progress; ties are broken in rotation, so that
	// even one caller's sequential calls spread over the servers. The
	// default.
	LeastOutstanding Balancer = iota
	// RoundRobin sends calls to the servers in turn.
	RoundRobin
)

// String returns the balancer's name.
func (b Balancer) String() string {
	switch b {
	case LeastOutstanding:
		return "least-outstanding"
	case RoundRobin:
		return "round-robin"
	}
	return fmt.Sprintf("Balancer(%d)", int(b))
}

// WithBalancer sets how a client made by DialCluster spreads its calls over
// the servers (default LeastOutstanding). Other clients ignore it.
func WithBalancer(b Balancer) Option {
	return func(o *options) { o.balancer = b }
}

// maxRoutes bounds the sessions a cluster client remembers the server of.
// Forgetting one is safe: a call of a forgotten session is refused as not
// sent (the client opens a new session), or, if it may have run, ends as
// may-have-executed; it is never sent to another server.
const maxRoutes = 1024

// maxDomainBytes bounds the name of an exactly-once domain a server may
// give; a longer one reads as no domain.
const maxDomainBytes = 256

// maxPendingCloses bounds, per server, the ended sessions waiting to be
// closed there; the oldest are left to expire with their lease.
const maxPendingCloses = 64

// DialCluster returns a client whose calls are spread over the servers at
// addrs (each a semrpc server, or a stock net/rpc one for calls without
// at-most-once semantics), by WithBalancer's rule. Like Dial it does no I/O
// by default; WithEagerDial makes it connect to every server before it
// returns, and fail only if none can be reached: a server down at dial time
// stays out of rotation until it answers.
//
// A server that refuses connections leaves the rotation and is probed again
// with backoff (WithRedialBackoff sets its range). An attempt that could
// not be sent to one server (connection refused, connection lost before
// the request was written) is sent to another at once, under every policy,
// NoRetry included: it did not run.
//
// At-most-once and exactly-once calls run in sessions, and the client
// holds one session per server (opened with the first such call that goes
// there), so they are balanced like any other call: the balancer picks the
// server of a call's first attempt, and the call runs in that server's
// session. A session lives in its server's table (and store), so every
// later attempt of the call goes to that server, and an attempt that may
// have executed there is sent to no server that cannot see the session's
// records. While the server is out of rotation, a call that never ran
// there is refused as not executed with the session, and the client makes
// it again in the session of a server that is up; a call that may have
// run waits for its server (within its context) or ends as
// may-have-executed — unless its server named an exactly-once domain at
// the handshake (its durable store is a semantics.DomainStore shared by
// several servers): then the attempt goes, with the same session and
// sequence number, to another server of that domain, which answers it from
// the record or runs it exactly once. The client asks a server whose
// domain it does not know yet with _semrpc.Health (or, if the server does
// not answer it, a handshake of its own, whose session it ends at its next
// handshake there or at Close).
//
// addrs must not be empty, and must not list an address twice. Options are
// those of Dial; WithTLS applies to every server.
func DialCluster(ctx context.Context, network string, addrs []string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if len(addrs) == 0 {
		return nil, semantics.Permanent(semantics.NotSent(errors.New("rpc: DialCluster: no address")))
	}
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if err := checkAddress(network, a); err != nil {
			return nil, err
		}
		if seen[a] {
			return nil, semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: DialCluster: address %q listed twice", a)))
		}
		seen[a] = true
	}
	if o.balancer != LeastOutstanding && o.balancer != RoundRobin {
		return nil, semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: DialCluster: unknown balancer %v", o.balancer)))
	}
	ct := newClusterTransport(network, addrs, &o)
	if o.eagerDial {
		if err := ct.connectAny(ctx); err != nil {
			ct.Close()
			return nil, err
		}
	}
	return newClient(ct, o), nil
}

// clusterTransport is the Transport behind DialCluster: one stream
// transport per server, a balancer over those in rotation, and the server
// (and exactly-once domain) of each at-most-once session. The client's
// session managers, one per server, send their handshakes to their own
// server (openOn); the transport routes every attempt with a header by its
// session.
type clusterTransport struct {
	members  []*member
	balancer Balancer
	probeMin time.Duration
	probeMax time.Duration
	next     atomic.Uint64 // rotation
	done     chan struct{} // closed by Close: ends the waits for a probe

	mu     sync.Mutex // protects following
	routes map[semantics.ClientID]*route
	closed bool
}

var _ Transport = (*clusterTransport)(nil)

// route is the server of one at-most-once session.
type route struct {
	m *member
	// domain is the exactly-once domain m named when it opened the
	// session: the servers that can see the session's records.
	domain string
	// maybe holds the sequence numbers of the session's calls with an
	// attempt that may have executed on m (pruned below the session's ack).
	maybe map[uint64]struct{}
}

// member is one server of a cluster.
type member struct {
	idx         int
	addr        string
	t           *tcpTransport
	outstanding atomic.Int64 // this client's attempts in progress on it

	mu        sync.Mutex // protects following
	down      bool       // its last dial failed: out of rotation
	probing   bool       // a call is probing it
	nextProbe time.Time
	pace      *backoff.ExponentialBackOff // the wait before the next probe after a failed dial
	lastErr   error
	closes    []semantics.ClientID // sessions to close with its next handshake
	// domain is the exactly-once domain its latest handshake named ("":
	// none); known says a handshake with it succeeded at all.
	domain string
	known  bool
}

func newClusterTransport(network string, addrs []string, o *options) *clusterTransport {
	ct := &clusterTransport{
		balancer: o.balancer,
		probeMin: o.redialMin,
		probeMax: o.redialMax,
		routes:   make(map[semantics.ClientID]*route),
		done:     make(chan struct{}),
	}
	// Each client starts its rotation at a random server, so that the
	// first calls (and sessions) of many clients spread too.
	ct.next.Store(rand.Uint64())
	// The cluster keeps each server's backoff (its rotation); the
	// per-server transports dial whenever asked.
	mo := *o
	mo.redialMin, mo.redialMax = time.Nanosecond, time.Nanosecond
	for i, a := range addrs {
		m := &member{idx: i, addr: a, pace: newRedialPacer(o.redialMin, o.redialMax)}
		base := streamDialer(network, a, o)
		m.t = newStreamTransport(a, func(ctx context.Context) (net.Conn, error) {
			nc, err := base(ctx)
			switch {
			case err == nil:
				m.markUp()
			case ctx.Err() == nil: // a caller's cancel says nothing about the server
				m.markDown(err)
			}
			return nc, err
		}, &mo)
		ct.members = append(ct.members, m)
	}
	return ct
}

func (m *member) markUp() {
	m.mu.Lock()
	m.down, m.lastErr = false, nil
	m.pace.Reset()
	m.mu.Unlock()
}

func (m *member) markDown(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down, m.lastErr = true, err
	m.nextProbe = time.Now().Add(m.pace.NextBackOff())
}

func (m *member) isDown() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down
}

// eligible reports whether a call may go to m now: it is in rotation, or it
// is due a probe that no other call is making.
func (m *member) eligible(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.down || (!m.probing && !now.Before(m.nextProbe))
}

// take claims m for one attempt: ok if eligible, probe if the attempt is
// m's probe (end it with endProbe).
func (m *member) take(now time.Time) (ok, probe bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.down {
		return true, false
	}
	if m.probing || now.Before(m.nextProbe) {
		return false, false
	}
	m.probing = true
	return true, true
}

func (m *member) endProbe() {
	m.mu.Lock()
	m.probing = false
	m.mu.Unlock()
}

// probeAt returns when m is next due a probe, zero if it is in rotation.
func (m *member) probeAt() (t time.Time, probing bool, lastErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.down {
		return time.Time{}, false, nil
	}
	return m.nextProbe, m.probing, m.lastErr
}

// setDomain notes the exactly-once domain m named in a handshake.
func (m *member) setDomain(domain string) {
	m.mu.Lock()
	m.domain, m.known = domain, true
	m.mu.Unlock()
}

// domainOf returns m's exactly-once domain, and whether a handshake with m
// told it.
func (m *member) domainOf() (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.domain, m.known
}

// queueClose notes that session id, opened on m, is to be closed there.
func (m *member) queueClose(id semantics.ClientID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.closes {
		if c == id {
			return
		}
	}
	if len(m.closes) >= maxPendingCloses {
		m.closes = m.closes[1:]
	}
	m.closes = append(m.closes, id)
}

func (m *member) takeCloses() []semantics.ClientID {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := m.closes
	m.closes = nil
	return ids
}

// closesPending reports whether sessions wait, on any server, to be ended
// there.
func (ct *clusterTransport) closesPending() bool {
	for _, m := range ct.members {
		m.mu.Lock()
		n := len(m.closes)
		m.mu.Unlock()
		if n > 0 {
			return true
		}
	}
	return false
}

// connectAny connects to every server, and fails only if none answers.
func (ct *clusterTransport) connectAny(ctx context.Context) error {
	errs := make([]error, len(ct.members))
	var wg sync.WaitGroup
	for i, m := range ct.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.t.conn(ctx, false)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return semantics.NotSent(fmt.Errorf("rpc: DialCluster: no server reachable: %w", errors.Join(errs...)))
}

// RoundTrip sends req to one server: the server of its session if it has a
// header (or another of its domain, see pinned), else one chosen by the
// balancer, moving to another server while attempts are not sent.
func (ct *clusterTransport) RoundTrip(ctx context.Context, req *Request, reply any) error {
	if ct.isClosed() {
		return errClosed()
	}
	switch {
	case req.Header != nil:
		return ct.pinned(ctx, req, reply)
	case req.ServiceMethod == closeMethod:
		return ct.closeSessions(ctx, req, reply)
	}
	return ct.balanced(ctx, req, reply)
}

func (ct *clusterTransport) isClosed() bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.closed
}

// balanced sends req to the server the balancer picks, and to the next one
// while the attempt is not sent. With req.WaitForReady it waits, until ctx
// ends, for a server to come back when none is in rotation.
func (ct *clusterTransport) balanced(ctx context.Context, req *Request, reply any) error {
	tried := make([]bool, len(ct.members))
	for {
		var lastErr error
		permanent := true // every attempt of this round failed for good
		for {
			m, probe := ct.pick(tried, time.Now())
			if m == nil {
				break
			}
			tried[m.idx] = true
			err := ct.send(ctx, m, probe, req, reply)
			if semantics.ClassOf(err) != semantics.ClassNotSent || ctx.Err() != nil || errors.Is(err, ErrClientClosed) {
				return err
			}
			if semantics.IsPermanent(err) && !m.isDown() {
				return err // the call's own fault (arguments that cannot be encoded): the same everywhere
			}
			lastErr = err
			permanent = permanent && semantics.IsPermanent(err)
		}
		if lastErr != nil && permanent {
			return lastErr
		}
		if !req.WaitForReady {
			if lastErr != nil {
				return lastErr
			}
			return ct.noServerError()
		}
		if err := ct.waitForProbe(ctx, ct.members...); err != nil {
			return err
		}
		clear(tried)
	}
}

// pick returns the server the balancer chooses among those not tried and
// eligible, claimed for one attempt, or nil.
func (ct *clusterTransport) pick(tried []bool, now time.Time) (*member, bool) {
	for {
		best := ct.choose(tried, now)
		if best == nil {
			return nil, false
		}
		if ok, probe := best.take(now); ok {
			return best, probe
		}
		tried[best.idx] = true // another call took its probe
	}
}

// choose returns the server the balancer chooses among those not tried
// and eligible, or nil; it does not claim it. The rotation runs over the
// candidates only (the eligible servers; for LeastOutstanding, those of
// them with the fewest calls), so that a server out of rotation does not
// hand its turns to the one after it.
func (ct *clusterTransport) choose(tried []bool, now time.Time) *member {
	cands := make([]*member, 0, len(ct.members))
	var bestLoad int64
	for _, m := range ct.members {
		if tried[m.idx] || !m.eligible(now) {
			continue
		}
		if ct.balancer == LeastOutstanding {
			load := m.outstanding.Load()
			if len(cands) > 0 && load > bestLoad {
				continue
			}
			if len(cands) == 0 || load < bestLoad {
				cands, bestLoad = cands[:0], load
			}
		}
		cands = append(cands, m)
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[ct.next.Add(1)%uint64(len(cands))]
}

// serverChoice is an at-most-once call's search for a server of a cluster
// to run in: the servers that left the rotation before the call could be
// sent to them, and why.
type serverChoice struct {
	tried     []bool
	lastErr   error
	permanent bool // every server that left the rotation refused for good
}

// chooseSessions returns the session manager of the server a new
// at-most-once call goes to: the only one for a client of one server; in
// a cluster, that of the server the balancer picks among those not yet
// found out of rotation for this call. When there is none it waits for a
// server's probe, within ctx and the call's retry deadline, or fails with
// the last server's refusal if every server refused for good.
func (c *Client) chooseSessions(ctx context.Context, deadline time.Time, p semantics.Policy, sc *serverChoice) (*sessionManager, error) {
	ct, ok := c.t.(*clusterTransport)
	if !ok {
		return c.sessions[0], nil
	}
	if sc.tried == nil {
		sc.tried, sc.permanent = make([]bool, len(ct.members)), true
	}
	for {
		if m := ct.choose(sc.tried, time.Now()); m != nil {
			return c.sessions[m.idx], nil
		}
		if sc.lastErr != nil && sc.permanent {
			return nil, sc.lastErr
		}
		wctx, cancel := withRetryDeadline(ctx, deadline)
		err := ct.waitForProbe(wctx, ct.members...)
		cancel()
		if err != nil {
			if errors.Is(err, ErrClientClosed) {
				return nil, semantics.GiveUp(p.Kind(), err)
			}
			return nil, semantics.GiveUp(p.Kind(), semantics.NotSent(fmt.Errorf("%w; last refusal: %v", err, sc.lastErr)))
		}
		clear(sc.tried)
		sc.lastErr, sc.permanent = nil, true
	}
}

// leftRotation reports whether err says that the server of sm left the
// rotation before the call could be sent there (its handshake, or its
// first attempt, refused as not executed): the call then tries another
// server, and this one is not chosen again until every server was tried.
func (sc *serverChoice) leftRotation(sm *sessionManager, err error) bool {
	var oor *outOfRotationError
	if sm.server < 0 || !errors.As(err, &oor) || !errors.Is(err, ErrNotExecuted) {
		return false
	}
	sc.tried[sm.server] = true
	sc.lastErr = err
	sc.permanent = sc.permanent && oor.permanent
	return true
}

// outOfRotationError is a request refused, not sent, because its server
// is out of rotation (its dial failed): the call moves to another server.
type outOfRotationError struct {
	addr      string
	err       error
	permanent bool // the dial failed for good (a certificate, say)
}

func (e *outOfRotationError) Error() string {
	return fmt.Sprintf("rpc: %s is out of rotation: %v", e.addr, e.err)
}

func (e *outOfRotationError) Unwrap() error { return e.err }

// openOn sends a session handshake to the server at index i, and to no
// other: it fails, not sent and permanent, with an outOfRotationError if
// that server is out of rotation, so that the call that needed the
// session moves to another server.
func (ct *clusterTransport) openOn(ctx context.Context, i int, req *Request, reply any) error {
	if ct.isClosed() {
		return errClosed()
	}
	m := ct.members[i]
	ok, probe := m.take(time.Now())
	if !ok {
		_, _, lastErr := m.probeAt()
		return semantics.Permanent(semantics.NotSent(&outOfRotationError{addr: m.addr, err: fmt.Errorf("last dial: %v", lastErr)}))
	}
	err := ct.send(ctx, m, probe, req, reply)
	if semantics.ClassOf(err) == semantics.ClassNotSent && ctx.Err() == nil && !errors.Is(err, ErrClientClosed) && m.isDown() {
		return semantics.Permanent(semantics.NotSent(&outOfRotationError{addr: m.addr, err: err, permanent: semantics.IsPermanent(err)}))
	}
	return err
}

// send makes one attempt of a call without a header on m. A session
// handshake carries the sessions to close on m, and its new session is
// routed to m.
func (ct *clusterTransport) send(ctx context.Context, m *member, probe bool, req *Request, reply any) error {
	r := *req
	r.WaitForReady = false
	var closing []semantics.ClientID
	open, isOpen := req.Args.(*OpenArgs)
	isOpen = isOpen && req.ServiceMethod == openMethod
	if isOpen {
		ct.queueCloses(open.Close)
		closing = m.takeCloses()
		r.Args = &OpenArgs{Version: open.Version, Close: closing}
	}
	m.outstanding.Add(1)
	err := m.t.RoundTrip(ctx, &r, reply)
	m.outstanding.Add(-1)
	if probe {
		m.endProbe()
	}
	if isOpen {
		switch semantics.ClassOf(err) {
		case semantics.ClassNotSent:
			for _, id := range closing {
				m.queueClose(id)
			}
		case semantics.ClassNone:
			if rep, ok := reply.(*OpenReply); ok && !rep.Client.IsZero() {
				domain := rep.Domain
				if len(domain) > maxDomainBytes {
					domain = "" // not a name a semrpc server sends: no domain
				}
				m.setDomain(domain)
				ct.addRoute(rep.Client, m, domain)
			}
		}
	}
	return err
}

// queueCloses moves sessions the client is done with to their servers'
// lists, to be closed with the next handshake there (or by Close).
func (ct *clusterTransport) queueCloses(ids []semantics.ClientID) {
	for _, id := range ids {
		ct.mu.Lock()
		rt := ct.routes[id]
		delete(ct.routes, id)
		ct.mu.Unlock()
		if rt != nil {
			rt.m.queueClose(id)
		}
	}
}

func (ct *clusterTransport) addRoute(id semantics.ClientID, m *member, domain string) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.routes) >= maxRoutes {
		for k := range ct.routes { // any one: see maxRoutes
			delete(ct.routes, k)
			break
		}
	}
	ct.routes[id] = &route{m: m, domain: domain, maybe: make(map[uint64]struct{})}
}

// sessionServer returns the server of h's session and its domain, after
// forgetting the session's calls below its ack, or nil if the session is
// unknown.
func (ct *clusterTransport) sessionServer(h *semantics.Header) (*member, string) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	rt := ct.routes[h.Client]
	if rt == nil {
		return nil, ""
	}
	for seq := range rt.maybe {
		if seq < h.Ack {
			delete(rt.maybe, seq)
		}
	}
	return rt.m, rt.domain
}

// mayHaveRun reports whether an attempt of h's call may have executed on
// its session's server. Unknown sessions answer true: nothing may be moved.
func (ct *clusterTransport) mayHaveRun(h *semantics.Header) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	rt := ct.routes[h.Client]
	if rt == nil {
		return true
	}
	_, ok := rt.maybe[h.Seq]
	return ok
}

func (ct *clusterTransport) markMaybe(h *semantics.Header) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if rt := ct.routes[h.Client]; rt != nil {
		rt.maybe[h.Seq] = struct{}{}
	}
}

func (ct *clusterTransport) dropRoute(id semantics.ClientID) {
	ct.mu.Lock()
	delete(ct.routes, id)
	ct.mu.Unlock()
}

// pinned sends an attempt of an at-most-once call to its session's server.
// While that server is out of rotation, an attempt that may have run
// there goes only to a server of the same exactly-once domain (one that
// can see the session's records), and to no other.
func (ct *clusterTransport) pinned(ctx context.Context, req *Request, reply any) error {
	h := req.Header
	home, domain := ct.sessionServer(h)
	if home == nil {
		return semantics.Permanent(semantics.NotSent(fmt.Errorf(
			"rpc: cluster: the server of session %v is not known: %w", h.Client, semantics.ErrSessionExpired)))
	}
	for {
		if sent, err := ct.attemptOn(ctx, home, true, req, reply); sent {
			if semantics.ClassOf(err) != semantics.ClassNotSent || ctx.Err() != nil || errors.Is(err, ErrClientClosed) || !home.isDown() {
				return err
			}
		}
		// home is out of rotation.
		if !ct.mayHaveRun(h) {
			return ct.movedError(home, h)
		}
		if domain != "" {
			if sent, err := ct.sendInDomain(ctx, home, domain, req, reply); sent {
				return err
			}
		}
		if !req.WaitForReady {
			at, _, lastErr := home.probeAt()
			where := "so it is not sent to another server"
			if domain != "" {
				where = fmt.Sprintf("and no other server of its domain %q is in rotation", domain)
			}
			return semantics.NotSent(fmt.Errorf(
				"rpc: %s out of rotation (probed again in %v; last dial: %v); call %d of session %v may have run there, %s",
				home.addr, time.Until(at).Round(time.Millisecond), lastErr, h.Seq, h.Client, where))
		}
		// Wait for home or a server known to be of its domain; servers
		// whose domain is unknown are asked again after that wait, which
		// home's probe backoff paces.
		waitOn := []*member{home}
		for _, m := range ct.members {
			if d, _ := m.domainOf(); domain != "" && m != home && d == domain {
				waitOn = append(waitOn, m)
			}
		}
		if err := ct.waitForProbe(ctx, waitOn...); err != nil {
			return err
		}
	}
}

// attemptOn makes one attempt of the at-most-once call req on m, if m can
// take it now, and reports whether it was made (sent or not). home says m is the
// server of req's session (whose refusal of the session forgets it).
func (ct *clusterTransport) attemptOn(ctx context.Context, m *member, home bool, req *Request, reply any) (sent bool, err error) {
	ok, probe := m.take(time.Now())
	if !ok {
		return false, nil
	}
	r := *req
	r.WaitForReady = false
	m.outstanding.Add(1)
	err = m.t.RoundTrip(ctx, &r, reply)
	m.outstanding.Add(-1)
	if probe {
		m.endProbe()
	}
	switch semantics.ClassOf(err) {
	case semantics.ClassMaybeExecuted:
		ct.markMaybe(req.Header)
	case semantics.ClassRejected:
		if home && (errors.Is(err, semantics.ErrSessionExpired) || errors.Is(err, semantics.ErrEpochMismatch)) {
			ct.dropRoute(req.Header.Client)
		}
	}
	return true, err
}

// sendInDomain sends an attempt that may have run on home, which is out of
// rotation, to another server of home's exactly-once domain: the first,
// in rotation order, that takes it. A server whose domain the client has
// not learned yet is asked with a handshake of its own first. It reports
// whether an attempt was made (the error is then the call's), and makes
// none if no server of the domain could take it.
func (ct *clusterTransport) sendInDomain(ctx context.Context, home *member, domain string, req *Request, reply any) (sent bool, err error) {
	n := len(ct.members)
	first := int(ct.next.Add(1) % uint64(n))
	for k := range n {
		m := ct.members[(first+k)%n]
		if m == home || !m.eligible(time.Now()) {
			continue
		}
		d, known := m.domainOf()
		if !known {
			d, known = ct.learnDomain(ctx, m, req.Metadata)
		}
		if !known || d != domain {
			continue
		}
		sent, err := ct.attemptOn(ctx, m, false, req, reply)
		if !sent {
			continue
		}
		if semantics.ClassOf(err) != semantics.ClassNotSent || ctx.Err() != nil || errors.Is(err, ErrClientClosed) || !m.isDown() {
			return true, err
		}
	}
	return false, nil
}

// learnDomain asks m for its exactly-once domain: with _semrpc.Health,
// which the server answers without its table or store (a handshake on a
// store shared with a server whose transaction is running would wait for
// it); if m does not answer it (introspection off, or a server that
// predates it), with a session handshake of its own, carrying md (the
// call's metadata, as any handshake does), whose session is queued to be
// ended with m's next handshake, or by Close.
func (ct *clusterTransport) learnDomain(ctx context.Context, m *member, md Metadata) (string, bool) {
	ok, probe := m.take(time.Now())
	if !ok {
		return "", false
	}
	var hr HealthReply
	req := Request{ServiceMethod: HealthMethod, Args: HealthArgs{}, Timeout: remaining(ctx, time.Now()), Metadata: md}
	err := ct.send(ctx, m, probe, &req, &hr)
	switch {
	case err == nil:
		domain := hr.Domain
		if len(domain) > maxDomainBytes {
			domain = ""
		}
		m.setDomain(domain)
		return domain, true
	case !errors.Is(err, ErrUnknownMethod):
		return "", false
	}
	if ok, probe = m.take(time.Now()); !ok {
		return "", false
	}
	var rep OpenReply
	req = Request{ServiceMethod: openMethod, Args: &OpenArgs{Version: 2}, Timeout: remaining(ctx, time.Now()), Metadata: md}
	if err := ct.send(ctx, m, probe, &req, &rep); err != nil || rep.Client.IsZero() {
		return "", false
	}
	ct.queueCloses([]semantics.ClientID{rep.Client})
	return m.domainOf()
}

// movedError refuses, as not sent, a call of a session whose server is out
// of rotation and where the call never ran: the client drops the session
// and makes the call again in a new one, on a server that is up.
func (ct *clusterTransport) movedError(m *member, h *semantics.Header) error {
	_, _, lastErr := m.probeAt()
	return semantics.Permanent(semantics.NotSent(&outOfRotationError{
		addr:      m.addr,
		err:       fmt.Errorf("the server of session %v (last dial: %v); call %d never ran there, and moves to a new session: %w", h.Client, lastErr, h.Seq, semantics.ErrSessionExpired),
		permanent: semantics.IsPermanent(lastErr),
	}))
}

// waitForProbe waits until one of ms is due a probe (or back in rotation),
// or ctx ends.
func (ct *clusterTransport) waitForProbe(ctx context.Context, ms ...*member) error {
	now := time.Now()
	wait := ct.probeMax
	var lastErr error
	for _, m := range ms {
		at, probing, err := m.probeAt()
		if err != nil {
			lastErr = err
		}
		switch {
		case at.IsZero(), probing:
			wait = min(wait, ct.probeMin)
		default:
			wait = min(wait, max(at.Sub(now), 0))
		}
	}
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ct.done:
		return errClosed()
	case <-ctx.Done():
		return semantics.NotSent(fmt.Errorf("rpc: waiting for a server of the cluster (last dial: %v): %w", lastErr, ctx.Err()))
	}
}

// noServerError is the not-sent error of a call that found no server in
// rotation and may not wait.
func (ct *clusterTransport) noServerError() error {
	var b strings.Builder
	now := time.Now()
	for i, m := range ct.members {
		at, _, err := m.probeAt()
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: probed again in %v (last dial: %v)", m.addr, max(at.Sub(now), 0).Round(time.Millisecond), err)
	}
	return semantics.NotSent(fmt.Errorf("rpc: no server of the cluster in rotation: %s", b.String()))
}

// closeSessions ends sessions on their servers: each server is sent the
// sessions it opened, with those queued for it. The sessions of a server
// out of rotation go to another server of its exactly-once domain, which
// sees them, or, if there is none, are left to expire with their lease.
func (ct *clusterTransport) closeSessions(ctx context.Context, req *Request, reply any) error {
	args, ok := req.Args.(*CloseArgs)
	if !ok {
		return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: cluster: %s with arguments %T", closeMethod, req.Args)))
	}
	ct.queueCloses(args.IDs)
	var errs []error
	closed := 0
	for _, m := range ct.members {
		ids := m.takeCloses()
		if len(ids) == 0 {
			continue
		}
		to := m
		if m.isDown() {
			if to = ct.domainPeer(m); to == nil {
				continue
			}
		}
		var rep CloseReply
		r := Request{ServiceMethod: closeMethod, Args: &CloseArgs{IDs: ids}, Timeout: req.Timeout, Metadata: req.Metadata}
		if err := to.t.RoundTrip(ctx, &r, &rep); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.addr, err))
			continue
		}
		closed += rep.Closed
	}
	if rep, ok := reply.(*CloseReply); ok {
		rep.Closed = closed
	}
	return errors.Join(errs...)
}

// domainPeer returns a server in rotation of m's exactly-once domain, or
// nil if m names none or none is in rotation.
func (ct *clusterTransport) domainPeer(m *member) *member {
	domain, _ := m.domainOf()
	if domain == "" {
		return nil
	}
	for _, o := range ct.members {
		if d, _ := o.domainOf(); o != m && d == domain && !o.isDown() {
			return o
		}
	}
	return nil
}

// Close closes every server's transport; calls pending on them fail.
func (ct *clusterTransport) Close() error {
	ct.mu.Lock()
	if ct.closed {
		ct.mu.Unlock()
		return nil
	}
	ct.closed = true
	close(ct.done)
	ct.mu.Unlock()
	var errs []error
	for _, m := range ct.members {
		if err := m.t.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ServerStatus is what a cluster client knows of one of its servers.
type ServerStatus struct {
	// Addr is the server's address, as given to DialCluster.
	Addr string
	// InRotation is false after a dial to the server failed, until a
	// probe connects again.
	InRotation bool
	// NextProbe is when a call may next try a server out of rotation.
	NextProbe time.Time
	// LastError is the error of the dial that took it out of rotation.
	LastError error
	// Outstanding counts this client's attempts in progress on it.
	Outstanding int
	// Domain is the exactly-once domain the server named in its latest
	// session handshake with this client ("" for none, or none yet).
	Domain string
}

// Servers returns the state of each server of a client made by
// DialCluster, in the order of its addresses; nil for other clients.
func (c *Client) Servers() []ServerStatus {
	ct, ok := c.t.(*clusterTransport)
	if !ok {
		return nil
	}
	out := make([]ServerStatus, len(ct.members))
	for i, m := range ct.members {
		m.mu.Lock()
		out[i] = ServerStatus{Addr: m.addr, InRotation: !m.down, LastError: m.lastErr, Outstanding: int(m.outstanding.Load()), Domain: m.domain}
		if m.down {
			out[i].NextProbe = m.nextProbe
		}
		m.mu.Unlock()
	}
	return out
}
