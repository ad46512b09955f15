//go:build linux

package hostile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Attacks on what the server keeps for its clients (sessions, replies) and
// on what it shows them (the debug page).

// requireToken is an interceptor that refuses calls without the metadata
// "token: secret".
func requireToken(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
	md, _ := rpc.FromIncomingContext(ctx)
	if md.First("token") != "secret" {
		return fmt.Errorf("no token: %w", semantics.ErrRejected)
	}
	return next(ctx, call)
}

// sendToken is the legitimate clients' interceptor that adds the token.
func sendToken(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
	return next(rpc.AppendToOutgoingContext(ctx, "token", "secret"), call)
}

// openRequests returns the stream of n session opens, types first.
func openRequests(n int) (types, opens []byte) {
	types = append(requestTypes(), openArgsType()...)
	unit := append(headerMessage(header{method: "_semrpc.Open", seq: 1}), openBody()...)
	return types, bytesRepeat(unit, n)
}

func bytesRepeat(b []byte, n int) []byte {
	out := make([]byte, 0, len(b)*n)
	for range n {
		out = append(out, b...)
	}
	return out
}

// 8. Sessions opened past an interceptor that refuses calls without a
// token.
func sessionsPastInterceptor() *attack {
	const n = 100
	a := &attack{name: "sessions-past-interceptor",
		server: func(scale) targetConfig {
			return targetConfig{kind: overTCP, opts: []rpc.Option{rpc.WithServerInterceptor(requireToken)},
				clientOpts: []rpc.Option{rpc.WithClientInterceptor(sendToken)}}
		},
		goal: fmt.Sprintf("%d session opens without the token an interceptor requires: no session created", n)}
	a.prepare = func(s *scenario) error {
		s.state = s.tg.srv.Table().Len() // the legitimate at-most-once client's session
		return nil
	}
	a.launch = func(s *scenario) error {
		types, opens := openRequests(n)
		c, err := s.dial()
		if err != nil {
			return err
		}
		if err := s.write(c, append(types, opens...)); err != nil {
			return err
		}
		rr := newRespReader(c)
		granted := 0
		for range n {
			var reply rpc.OpenReply
			resp, _, _, err := rr.next(&reply)
			if err != nil {
				return err
			}
			if resp.Error == "" && !reply.Client.IsZero() {
				granted++
			}
		}
		s.res.fact("%d of %d opens granted a session", granted, n)
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if n := s.tg.srv.Table().Len() - s.state.(int); n > 0 {
			r.miss("the attacker has %d sessions in the table", n)
		}
	}
	return a
}

// 8b. A flood of session opens, against a small table (max sessions) or
// the default one (max 0: 65,536).
func sessionFlood(name string, max int) *attack {
	a := &attack{name: name}
	var opts []rpc.Option
	if max > 0 {
		opts = append(opts, rpc.WithTable(semantics.NewTable(&semantics.TableConfig{MaxSessions: max})))
		a.goal = fmt.Sprintf("5,000 session opens (full: 20,000), then as many during the legitimate calls, against a table of %d: legitimate at-most-once calls keep succeeding", max)
	} else {
		a.goal = "65,536 session opens, then 10,000 more, against the default table: legitimate at-most-once calls keep succeeding, opens past the cap stay cheap"
		// Full scale only: under the race detector the opens past the cap
		// take minutes.
		a.fullOnly = true
	}
	a.server = tcpWith(opts...)
	type flood struct {
		types, opens []byte
		extra        []byte
	}
	a.prepare = func(s *scenario) error {
		n := s.scale.pick(5000, 20_000)
		if max == 0 {
			n = semantics.DefaultMaxSessions
		}
		f := &flood{}
		f.types, f.opens = openRequests(n)
		extra := s.scale.pick(5000, 20_000)
		if max == 0 {
			extra = 10_000 // past the cap, each open scans the table
		}
		_, f.extra = openRequests(extra)
		s.state = f
		return nil
	}
	// send writes opens on a new connection while a helper reads the
	// answers, and returns when all are answered.
	send := func(s *scenario, f *flood, opens []byte, n int) (time.Duration, error) {
		c, err := s.dial()
		if err != nil {
			return 0, err
		}
		done := make(chan error, 1)
		rr := newRespReader(c)
		s.goHelper(func() { done <- rr.skipResponses(n) })
		start := time.Now()
		if err := s.write(c, append(f.types, opens...)); err != nil {
			return 0, err
		}
		select {
		case err := <-done:
			return time.Since(start), err
		case <-time.After(3 * time.Minute):
			return 0, errors.New("the opens were not all answered within 3 minutes")
		}
	}
	a.launch = func(s *scenario) error {
		f := s.state.(*flood)
		n := countOpens(f.opens)
		took, err := send(s, f, f.opens, n)
		if err != nil {
			return err
		}
		s.res.fact("%d opens in %v (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
		if max == 0 {
			m := countOpens(f.extra)
			took2, err := send(s, f, f.extra, m)
			if err != nil {
				return err
			}
			s.res.fact("then %d opens past the cap in %v (%.0f/s)", m, took2.Round(time.Millisecond), float64(m)/took2.Seconds())
			if rate, rate2 := float64(n)/took.Seconds(), float64(m)/took2.Seconds(); rate2 < rate/10 {
				s.res.miss("opens past the cap are %.0f× slower than below it", rate/rate2)
			}
		}
		return nil
	}
	a.during = func(s *scenario) {
		f := s.state.(*flood)
		s.goHelper(func() { send(s, f, f.extra, countOpens(f.extra)) })
	}
	a.check = func(s *scenario, r *Result) {
		st := s.tg.srv.Table().Stats()
		r.fact("table: %d sessions, %d opened, %d evicted, %d refused", st.Sessions, st.Opened, st.Evicted, st.TooMany)
	}
	return a
}

// countOpens counts the open requests in a stream of them.
func countOpens(opens []byte) int {
	unit := append(headerMessage(header{method: "_semrpc.Open", seq: 1}), openBody()...)
	return len(opens) / len(unit)
}

// skipResponses reads n responses, keeping none.
func (rr *respReader) skipResponses(n int) error {
	rr.broken = true // nothing decoded
	for range n {
		if _, _, _, err := rr.next(nil); err != nil {
			return err
		}
	}
	return nil
}

// 9. One session's replies, never acknowledged.
func keptReplies() *attack {
	const calls = 300
	a := &attack{name: "kept-replies",
		server: func(sc scale) targetConfig { return targetConfig{kind: overTCP, bigSize: sc.pick(512<<10, 1<<20)} },
		goal: fmt.Sprintf("one session with %d never-acknowledged 512 KiB (full: 1 MiB) replies: they hold ≤ %s, calls past the budget refused, not run",
			calls, size(keptRepliesBound))}
	type session struct {
		c      *rawConn
		rr     *respReader
		hi, lo uint64
		epoch  uint64
		calls  []byte

		ok, refused int // answers to the calls, counted by the reader
	}
	a.prepare = func(s *scenario) error {
		c, err := s.dial()
		if err != nil {
			return err
		}
		types := append(requestTypes(), openArgsType()...)
		types = append(types, getArgsType()...)
		if err := s.write(c, append(types, append(headerMessage(header{method: "_semrpc.Open", seq: 1}), openBody()...)...)); err != nil {
			return err
		}
		ss := &session{c: c, rr: newRespReader(c)}
		var open rpc.OpenReply
		resp, _, _, err := ss.rr.next(&open)
		if err != nil || resp.Error != "" {
			return fmt.Errorf("opening a session: %v %s", err, resp.Error)
		}
		ss.hi, ss.lo, ss.epoch = open.Client.Hi, open.Client.Lo, open.Epoch
		s.res.fact("the server lets a session keep %d calls", open.MaxCalls)
		for i := uint64(1); i <= calls; i++ {
			h := header{method: "Store.Read", seq: i + 1, sem: &semHeader{hi: ss.hi, lo: ss.lo, seq: i, ack: 1, epoch: ss.epoch}}
			ss.calls = append(ss.calls, headerMessage(h)...)
			ss.calls = append(ss.calls, getBody(BigKey)...)
		}
		s.state = ss
		return nil
	}
	a.launch = func(s *scenario) error {
		ss := s.state.(*session)
		before := s.tg.store.reads.Load()
		done := make(chan error, 1)
		s.goHelper(func() {
			for range calls {
				resp, _, _, err := ss.rr.next(nil)
				if err != nil {
					done <- err
					return
				}
				if resp.Error == "" {
					ss.ok++
				} else {
					ss.refused++
				}
			}
			done <- nil
		})
		if err := s.write(ss.c, ss.calls); err != nil {
			return err
		}
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case <-time.After(60 * time.Second):
			return errors.New("the calls were not all answered within 60 s")
		}
		ran := s.tg.store.reads.Load() - before
		s.res.fact("%d calls answered, %d refused; Store.Read ran %d times", ss.ok, ss.refused, ran)
		if ran > int64(ss.ok) {
			s.res.miss("%d refused calls ran", ran-int64(ss.ok))
		}
		return nil
	}
	a.check = func(s *scenario, r *Result) {
		if r.Held > keptRepliesBound {
			r.miss("the session's replies hold %s (bound %s)", size(r.Held), size(keptRepliesBound))
		}
	}
	return a
}

// 10e. The debug page, asked for from an address that is not loopback.
func debugPage() *attack {
	a := &attack{name: "debug-nonloopback", server: over(overHTTP),
		goal: "/debug/rpc asked for from a non-loopback address: refused"}
	a.launch = func(s *scenario) error {
		// The page sees its peer's address only: a request from a
		// documentation address (TEST-NET-1), handed to the handler.
		req := httptest.NewRequest(http.MethodGet, rpc.DefaultDebugPath, nil)
		req.RemoteAddr = "192.0.2.1:4321"
		rec := httptest.NewRecorder()
		s.tg.srv.DebugHandler().ServeHTTP(rec, req)
		body := rec.Body.String()
		s.res.fact("from %s: %d, %d bytes, lists the methods: %v", req.RemoteAddr, rec.Code, len(body), strings.Contains(body, "Store"))
		if rec.Code == http.StatusOK || strings.Contains(body, "Store") {
			s.res.miss("the page was served to %s", req.RemoteAddr)
		}
		// And over the network, from this machine's own non-loopback
		// address when it has one.
		if ip := nonLoopbackIPv4(); ip != nil {
			ln, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), "0"))
			if err != nil {
				return nil
			}
			hs := &http.Server{Handler: s.tg.srv.DebugHandler()}
			go hs.Serve(ln)
			defer hs.Close()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 2 * time.Second}
			cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
			resp, err := cl.Get("http://" + ln.Addr().String() + rpc.DefaultDebugPath)
			if err != nil {
				return nil
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s.res.fact("from %s over TCP: %d, lists the methods: %v", ip, resp.StatusCode, strings.Contains(string(b), "Store"))
			if resp.StatusCode == http.StatusOK {
				s.res.miss("the page was served to %s", ip)
			}
		}
		return nil
	}
	return a
}

// nonLoopbackIPv4 returns an IPv4 address of this machine that is not
// loopback, or nil.
func nonLoopbackIPv4() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.To4()
		}
	}
	return nil
}
