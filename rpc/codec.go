package rpc

import (
	"bytes"
	"crypto/tls"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	netrpc "net/rpc"
	"net/rpc/jsonrpc"
	"reflect"
	"sync"
	"time"
)

// ServeCodec serves one connection through a net/rpc ServerCodec, such as
// jsonrpc.NewServerCodec(conn), so that stock net/rpc clients speaking
// another codec can call a semrpc server. It returns when the codec fails
// to read a request (the peer hung up, the stream broke) or the server is
// closed, after every call it started has finished.
//
// A stock codec carries no semrpc header: every call through it is a plain
// call, run once per request with no at-most-once table, no deadline from
// the caller and no response codes (the caller sees the error text only).
// Limits on message size are the codec's; Serve's own JSON connections are
// bounded by WithMaxMessageSize. A reply the codec cannot write closes the
// connection (Serve's JSON connections answer an error instead, for a reply
// with no JSON form or over the message limit). Close and Shutdown close
// the codec, which must allow Close while a read is blocked (codecs over a
// net.Conn do).
func (s *Server) ServeCodec(codec netrpc.ServerCodec) {
	s.serveCodec(codec, "a codec connection", nil)
}

// serveCodec is ServeCodec, with the peer named in its log lines; lim, if
// not nil, is told when calls are pending.
func (s *Server) serveCodec(codec netrpc.ServerCodec, peer string, lim *jsonLimit) {
	cc := &codecConn{s: s, codec: codec, peer: peer, sem: make(chan struct{}, s.opts.maxConcurrent), done: make(chan struct{})}
	if lim != nil {
		lim.busy = func() bool { return len(cc.sem) > 0 }
	}
	oc := &otherConn{close: cc.close}
	if !s.addOther(oc, true) {
		codec.Close()
		return
	}
	defer s.connWG.Done()
	defer s.dropOther(oc, true)
	cc.serve()
}

// WithJSONCodec turns on (the default) or off the JSON-RPC side of Serve:
// a connection that opens as a JSON object ('{' then a quote, '}' or white
// space) is served with net/rpc/jsonrpc's codec (JSON-RPC 1.0, as
// jsonrpc.Dial speaks it), any other with the gob wire. With it off, Serve
// speaks gob only. ServeHTTP follows the same option.
func WithJSONCodec(on bool) Option {
	return func(o *options) { o.noJSON = !on }
}

// codecConn serves one connection through a net/rpc ServerCodec.
type codecConn struct {
	s     *Server
	codec netrpc.ServerCodec
	peer  string        // for the log: "a codec connection", or the JSON-RPC client's address
	sem   chan struct{} // bounds the calls running at once
	done  chan struct{} // closed by close
	wg    sync.WaitGroup

	wmu sync.Mutex // protects following, and serialises WriteResponse
	bad bool       // a write failed; the codec is closed

	closeOnce sync.Once
}

func (cc *codecConn) close() {
	cc.closeOnce.Do(func() {
		close(cc.done)
		cc.codec.Close()
	})
}

func (cc *codecConn) serve() {
	defer func() {
		cc.close()
		cc.wg.Wait()
	}()
	for {
		var req netrpc.Request
		if err := cc.codec.ReadRequestHeader(&req); err != nil {
			cc.logReadError("reading request header", err)
			return
		}
		m, err := cc.s.lookup(req.ServiceMethod)
		if err != nil {
			cc.s.rejected.Add(1)
			if berr := cc.codec.ReadRequestBody(nil); berr != nil && codecStreamBroken(berr) {
				cc.logReadError("discarding request body", berr)
				return
			}
			cc.respond(req, nil, err)
			continue
		}
		ptr, pass := m.newArgs()
		if err := cc.codec.ReadRequestBody(ptr); err != nil {
			cc.s.rejected.Add(1)
			cc.respond(req, nil, reject(CodeBadArguments, "rpc: decoding arguments of %s: %v", req.ServiceMethod, err))
			if codecStreamBroken(err) {
				cc.logReadError("reading request body", err)
				return
			}
			continue
		}
		select {
		case cc.sem <- struct{}{}:
		case <-cc.done:
			return
		}
		cc.wg.Add(1)
		go cc.run(req, m, ptr, pass)
	}
}

// run executes one request as a plain call and writes its answer. It is
// counted in inflight until the answer is written, as the gob path's are.
func (cc *codecConn) run(req netrpc.Request, m *methodType, ptr any, pass reflect.Value) {
	defer cc.wg.Done()
	cc.s.inflight.Add(1)
	ctx, cancel := cc.s.callContext(0)
	reply, err := cc.s.execute(ctx, m, nil, ptr, pass)
	cancel()
	cc.respond(req, reply, err)
	cc.s.inflight.Add(-1)
	<-cc.sem
}

func (cc *codecConn) respond(req netrpc.Request, reply any, err error) {
	resp := netrpc.Response{ServiceMethod: echoName(req.ServiceMethod), Seq: req.Seq}
	if err != nil {
		_, resp.Error = EncodeError(err)
		reply = emptyBody{}
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if cc.bad {
		return
	}
	if werr := cc.codec.WriteResponse(&resp, reply); werr != nil {
		cc.bad = true
		select {
		case <-cc.done:
		default:
			if !codecStreamBroken(werr) {
				cc.s.logPeer("rpc: writing response to %s to %s: %v; closing the connection", quoteName(req.ServiceMethod), cc.peer, werr)
			}
		}
		cc.close()
	}
}

// codecStreamBroken reports whether a codec's error leaves its stream
// unusable (as opposed to one value that did not fit its type).
func codecStreamBroken(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.ErrClosedPipe) || errors.Is(err, ErrMessageTooLarge) || errors.As(err, &ne)
}

func (cc *codecConn) logReadError(what string, err error) {
	select {
	case <-cc.done:
		return
	default:
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errIdle) {
		return
	}
	cc.s.logPeer("rpc: closing %s: %s: %s", cc.peer, what, logText(err))
}

// otherConn is a connection the server tracks beside its gob connections:
// one served by ServeCodec, or one accepted by Serve whose first bytes have
// not arrived yet.
type otherConn struct {
	close  func()
	notice func() // tells the peer that the server shuts down; may be nil
}

// addOther registers oc so that Close and Shutdown reach it, or returns
// false if the server is closed. On true the caller owns one count of
// s.connWG and must call s.connWG.Done when it is done with the connection.
func (s *Server) addOther(oc *otherConn, counted bool) bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return false
	}
	s.others[oc] = struct{}{}
	if counted {
		s.connCount.Add(1)
	}
	s.connWG.Add(1)
	return true
}

func (s *Server) dropOther(oc *otherConn, counted bool) {
	s.lmu.Lock()
	delete(s.others, oc)
	s.lmu.Unlock()
	if counted {
		s.connCount.Add(-1)
	}
}

func (s *Server) otherList() []*otherConn {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	l := make([]*otherConn, 0, len(s.others))
	for oc := range s.others {
		l = append(l, oc)
	}
	return l
}

func (s *Server) closeOthers() {
	for _, oc := range s.otherList() {
		oc.close()
	}
}

// noticeOthers sends the shutdown notice to the connections that have one,
// each on its own goroutine counted in wg (see Shutdown).
func (s *Server) noticeOthers(wg *sync.WaitGroup) {
	for _, oc := range s.otherList() {
		if oc.notice == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			oc.notice()
		}()
	}
}

// sniff starts serving a connection accepted by Serve: a goroutine waits
// for its first two bytes, then serves it with the JSON-RPC codec (unless
// WithJSONCodec(false)) or the gob wire (see looksLikeJSON), or refuses a
// TLS handshake on a plain listener and a plain client on a TLS one. It
// returns false if the server is closed.
func (s *Server) sniff(nc net.Conn) bool {
	sc := &sniffConn{Conn: nc}
	oc := &otherConn{close: func() { nc.Close() }, notice: sc.goAway}
	// Counted as open, so that Shutdown gives its peer the grace it gives
	// every connection after the notice.
	if !s.addOther(oc, true) {
		nc.Close()
		return false
	}
	go func() {
		defer s.connWG.Done()
		err := s.handshake(nc)
		if err == nil {
			err = s.readFirst(nc, sc.first[:])
		}
		if err == errIdle {
			sc.goAway() // a semrpc client that dialled and never called
			s.dropOther(oc, true)
			nc.Close()
			return
		}
		if err != nil {
			s.refuseWrongTLS(nc, err)
		} else if looksLikeTLSHello(sc.first) {
			s.refuseTLSClient(nc)
			err = errTLSOnPlain
		}
		isJSON := err == nil && !s.opts.noJSON && looksLikeJSON(sc.first)
		told := sc.handOff()
		if err == nil && !isJSON && (told || s.shutting.Load()) {
			// A gob request on a connection the server has not yet taken
			// while it shuts down: answered ErrShuttingDown, as the gob
			// connections' requests are, until Shutdown closes it.
			sc.refuseGob(s.newMsgReader(sc), ErrShuttingDown.Error())
		}
		s.dropOther(oc, true)
		if err != nil || told || s.shutting.Load() {
			nc.Close()
			return
		}
		if isJSON {
			s.serveJSON(sc)
			return
		}
		s.serveConn(sc)
	}()
	return true
}

// handshake completes the TLS handshake of a connection from a TLS
// listener within the server's handshake timeout; other connections have
// none to make.
func (s *Server) handshake(nc net.Conn) error {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	if d := timeout(s.opts.handshakeTimeout); d > 0 {
		tc.SetDeadline(time.Now().Add(d))
		defer tc.SetDeadline(time.Time{})
	}
	return tc.Handshake()
}

// readFirst reads a connection's first bytes into b, waiting at most the
// server's idle timeout for them (errIdle then), and the read timeout for
// the rest once one has come.
func (s *Server) readFirst(nc net.Conn, b []byte) error {
	idle, msg := timeout(s.opts.idleTimeout), timeout(s.opts.readTimeout)
	if idle > 0 {
		nc.SetReadDeadline(time.Now().Add(idle))
	}
	n, err := io.ReadAtLeast(nc, b, 1)
	if err != nil && n == 0 && isTimeout(err) {
		return errIdle
	}
	if err == nil && n < len(b) {
		if msg > 0 {
			nc.SetReadDeadline(time.Now().Add(msg))
		}
		_, err = io.ReadFull(nc, b[n:])
	}
	if idle > 0 || msg > 0 {
		nc.SetReadDeadline(time.Time{})
	}
	return err
}

// looksLikeTLSHello reports whether a stream opens as a TLS handshake
// record (content type 22, then major version 3). No gob stream starts so:
// its first message, 22 bytes long, would begin with type id -2, which
// names no type a stream may define.
func looksLikeTLSHello(b [2]byte) bool {
	return b[0] == 0x16 && b[1] == 0x03
}

var errTLSOnPlain = errors.New("rpc: a TLS client on a listener without TLS")

// tlsHandshakeFailureAlert is a TLS record holding a fatal
// handshake_failure alert: a TLS client reads it as the server refusing
// the handshake ("remote error"), so it fails its dial at once and for
// good, instead of reading a closed connection as a server to wait for.
var tlsHandshakeFailureAlert = []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 40}

// refuseTLSClient answers a TLS client that reached a listener without
// TLS, and says so in the log.
func (s *Server) refuseTLSClient(nc net.Conn) {
	s.logPeer("rpc: %s opened a TLS handshake, but this listener is not TLS (see ListenTLS); refused", nc.RemoteAddr())
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(tlsHandshakeFailureAlert)
}

// refuseWrongTLS handles a connection on a TLS listener whose handshake
// failed. A client that sent no TLS at all (its first bytes are a gob or
// JSON-RPC request) is told, in its own codec, that the server takes TLS
// only: its first call fails as refused, not run. Each failure is logged,
// as net/http logs its failed handshakes, except a peer that hung up.
func (s *Server) refuseWrongTLS(nc net.Conn, err error) {
	tc, ok := nc.(*tls.Conn)
	if !ok || tc.ConnectionState().HandshakeComplete || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	var rhe tls.RecordHeaderError
	if !errors.As(err, &rhe) || rhe.Conn == nil {
		s.logPeer("rpc: TLS handshake with %s: %s", nc.RemoteAddr(), logText(err))
		// A TLS 1.3 client ends its side of the handshake before the
		// server has checked its certificate, and writes its first request
		// at once. Closing with that request unread would reset the
		// connection, and the reset can overtake the alert that says why
		// the handshake failed; read it first (briefly, and bounded), so
		// that the client gets the alert.
		raw := tc.NetConn()
		raw.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(raw, 64<<10))
		return
	}
	s.logPeer("rpc: %s sent a request without TLS to a TLS listener; refused", nc.RemoteAddr())
	msg := fmt.Sprintf("rpc: %s takes TLS connections only, and this one is not TLS (dial with rpc.WithTLS); the call was not run", nc.LocalAddr())
	rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if rhe.RecordHeader[0] == '{' {
		// JSON-RPC 1.0: a fresh net/rpc client's first call has id 0.
		b, _ := json.Marshal(map[string]any{"id": 0, "result": nil, "error": msg})
		rhe.Conn.Write(b)
		return
	}
	// The gob wire: a fresh semrpc client's first call has sequence number
	// 1, a stock net/rpc client's 0; each ignores an answer to the other's.
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for seq := range uint64(2) {
		if enc.Encode(&wireResponse{ServiceMethod: "", Seq: seq, Error: msg, Code: CodeRejected}) != nil ||
			enc.Encode(emptyBody{}) != nil {
			return
		}
	}
	rhe.Conn.Write(buf.Bytes())
}

// looksLikeJSON tells a JSON-RPC stream from a gob one by its first two
// bytes. A JSON request is an object: '{', then a quote, '}' or white
// space. A gob stream starts with the length of its first message, then,
// for every stream a net/rpc-style client starts (its first value is a
// struct, whose type is defined first), a negative type id below -64,
// which gob writes as a byte count (0xFF, 0xFE, ...) and the bytes. So a
// first message 123 bytes long ('{') is still gob.
func looksLikeJSON(b [2]byte) bool {
	if b[0] != '{' {
		return false
	}
	switch b[1] {
	case '"', '}', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// serveJSON serves a JSON-RPC connection, each request bounded by the
// server's message limit.
func (s *Server) serveJSON(c net.Conn) {
	lim := &jsonLimit{r: c, max: s.opts.maxMsg, dl: c, idle: timeout(s.opts.idleTimeout), msg: timeout(s.opts.readTimeout)}
	rwc := struct {
		io.Reader
		io.Writer
		io.Closer
	}{lim, s.deadlineWriter(c), c}
	s.serveCodec(&limitedCodec{ServerCodec: jsonrpc.NewServerCodec(rwc), lim: lim}, "JSON-RPC connection from "+c.RemoteAddr().String(), lim)
}

// limitedCodec restarts its reader's byte count at each request.
type limitedCodec struct {
	netrpc.ServerCodec
	lim *jsonLimit
}

func (c *limitedCodec) ReadRequestHeader(r *netrpc.Request) error {
	c.lim.restart()
	return c.ServerCodec.ReadRequestHeader(r)
}

// WriteResponse answers an error instead of a reply that has no JSON form
// or is over the message limit: the method ran, its reply is unusable
// (JSON-RPC carries only the text), and the connection stays in use.
func (c *limitedCodec) WriteResponse(r *netrpc.Response, body any) error {
	if r.Error == "" {
		b, err := json.Marshal(body)
		switch {
		case err != nil:
			r.Error = fmt.Sprintf("rpc: %s ran, but its reply could not be encoded: %v", r.ServiceMethod, err)
			body = nil
		case len(b) > c.lim.max:
			r.Error = fmt.Sprintf("rpc: %s ran, but its reply (%d bytes) is over the message limit (%d bytes): %v",
				r.ServiceMethod, len(b), c.lim.max, ErrMessageTooLarge)
			body = nil
		default:
			body = json.RawMessage(b)
		}
	}
	return c.ServerCodec.WriteResponse(r, body)
}

// jsonLimit fails a read once more than max bytes were read since the
// count last restarted: JSON has no length prefix, so the bound is on what
// the decoder has pulled in for the request it is reading (plus what it
// read ahead of the next ones).
//
// It keeps the connection's read deadlines too: while no byte of a request
// has come, the idle timeout (waited again while calls are pending, see
// busy); once one has, the read timeout for the rest of it.
type jsonLimit struct {
	r   io.Reader
	max int
	n   int

	dl        readDeadliner
	idle, msg time.Duration // 0: none
	busy      func() bool   // set by serveCodec: calls are pending
	started   bool          // the current request's deadline is set
}

func (l *jsonLimit) Read(p []byte) (int, error) {
	if l.n >= l.max {
		return 0, fmt.Errorf("%w: a JSON-RPC request over %d bytes", ErrMessageTooLarge, l.max)
	}
	if len(p) > l.max-l.n {
		p = p[:l.max-l.n]
	}
	for {
		switch {
		case l.n == 0 && l.idle > 0:
			l.dl.SetReadDeadline(time.Now().Add(l.idle))
		case l.n > 0 && !l.started && l.msg > 0:
			l.started = true
			l.dl.SetReadDeadline(time.Now().Add(l.msg))
		}
		n, err := l.r.Read(p)
		l.n += n
		if n == 0 && l.n == 0 && isTimeout(err) && l.busy != nil && l.busy() {
			continue // the peer waits for replies: not idle
		}
		if n == 0 && l.n == 0 && isTimeout(err) {
			return 0, errIdle
		}
		return n, err
	}
}

// restart counts a new request.
func (l *jsonLimit) restart() { l.n, l.started = 0, false }

// sniffConn is a connection whose first bytes were read to choose its
// codec; reads return them first.
type sniffConn struct {
	net.Conn
	first    [2]byte
	replayed int // bytes of first read back; touched by the reading goroutine only

	mu     sync.Mutex // protects following
	handed bool       // past the sniff: the notice is no longer sniff's to send
	told   bool       // the shutdown notice was written, with enc
	buf    bytes.Buffer
	enc    *gob.Encoder // the gob stream sniff writes (the notice, refusals)
}

func (c *sniffConn) Read(p []byte) (int, error) {
	if c.replayed < len(c.first) {
		n := copy(p, c.first[c.replayed:])
		c.replayed += n
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the connection underneath (a *tls.Conn when Serve's
// listener is a TLS one), as tls.Conn's NetConn does.
func (c *sniffConn) NetConn() net.Conn { return c.Conn }

// handOff ends the sniff and reports whether the shutdown notice was
// written.
func (c *sniffConn) handOff() (told bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handed = true
	return c.told
}

// goAway writes the gob wire's shutdown notice on a connection that has
// sent nothing yet (a semrpc client may hold it open, idle). A JSON-RPC
// peer would read it as garbage, but an idle one has no call to lose.
func (c *sniffConn) goAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handed || c.told {
		return
	}
	c.told = true
	c.send(&wireResponse{ServiceMethod: goAwayMethod, Seq: goAwaySeq, Error: ErrShuttingDown.Error(), Code: CodeShuttingDown})
}

// send writes one gob response with an empty body; c.mu must be held, or
// the sniff be over.
func (c *sniffConn) send(resp *wireResponse) error {
	if c.enc == nil {
		c.enc = gob.NewEncoder(&c.buf)
	}
	c.buf.Reset()
	if err := c.enc.Encode(resp); err != nil {
		return err
	}
	if err := c.enc.Encode(emptyBody{}); err != nil {
		return err
	}
	_, err := c.Conn.Write(c.buf.Bytes())
	return err
}

// refuseGob answers every gob request on the connection with
// CodeShuttingDown (not run) and the reason, until the connection ends.
// in reads the connection, with the server's limits.
func (c *sniffConn) refuseGob(in *msgReader, reason string) {
	dec := gob.NewDecoder(in)
	for {
		var req wireRequest
		if err := dec.Decode(&req); err != nil {
			return
		}
		if err := dec.DecodeValue(reflect.Value{}); err != nil { // the body, unread
			return
		}
		err := c.send(&wireResponse{ServiceMethod: echoName(req.ServiceMethod), Seq: req.Seq,
			Error: fmt.Sprintf("%s; %s not run", reason, quoteName(req.ServiceMethod)), Code: CodeShuttingDown})
		if err != nil {
			return
		}
	}
}
