package rpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"

	"io"
	"math"
	"net"
	stdrpc "net/rpc"
	"net/rpc/jsonrpc"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// A stock net/rpc/jsonrpc client reaches Serve's listener: the first byte
// '{' selects the JSON codec.
func TestServeAnswersStockJSONRPCClient(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c, err := jsonrpc.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var sum int
	if err := c.Call("Arith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
	var q Quotient
	err = c.Call("Arith.Divide", Args{1, 0}, &q)
	if se, ok := err.(stdrpc.ServerError); !ok || string(se) != "divide by zero" {
		t.Fatalf("Divide: err = %#v, want ServerError(divide by zero)", err)
	}
	err = c.Call("Arith.Missing", Args{}, &q)
	if se, ok := err.(stdrpc.ServerError); !ok || !strings.Contains(string(se), `can't find method "Arith.Missing"`) {
		t.Fatalf("missing method: err = %#v", err)
	}
	// Arguments of the wrong type are refused; the connection stays usable.
	err = c.Call("Arith.Add", "not a struct", &sum)
	if se, ok := err.(stdrpc.ServerError); !ok || !strings.Contains(string(se), "decoding arguments of Arith.Add") {
		t.Fatalf("bad arguments: err = %#v", err)
	}
	if err := c.Call("Arith.Mul", Args{4, 5}, &sum); err != nil || sum != 20 {
		t.Fatalf("Mul after a refused call = %d, %v", sum, err)
	}
	if n := a.calls.Load(); n != 3 {
		t.Fatalf("method executions = %d, want 3 (Add, Divide, Mul)", n)
	}
}

// ServeCodec takes any net/rpc ServerCodec; its calls are plain calls and
// run concurrently.
func TestServeCodecRunsCallsConcurrently(t *testing.T) {
	s, a, _, _ := startServer(t)
	cs, ss := net.Pipe()
	served := make(chan struct{})
	go func() {
		s.ServeCodec(jsonrpc.NewServerCodec(ss))
		close(served)
	}()
	c := jsonrpc.NewClient(cs)
	slow := c.Go("Arith.Slow", Args{A: 7}, new(int), nil)
	var sum int
	// Answered while Slow still runs.
	if err := c.Call("Arith.Add", Args{1, 1}, &sum); err != nil || sum != 2 {
		t.Fatalf("Add beside a running call = %d, %v", sum, err)
	}
	if got := s.Stats().Connections; got != 1 {
		t.Fatalf("Connections = %d, want 1 (the codec's)", got)
	}
	close(a.block)
	<-slow.Done
	if slow.Error != nil || *slow.Reply.(*int) != 7 {
		t.Fatalf("Slow = %v, %v", *slow.Reply.(*int), slow.Error)
	}
	if st := s.Table().Stats(); st.New != 0 || st.Opened != 0 {
		t.Fatalf("codec calls touched the at-most-once table: %+v", st)
	}
	c.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeCodec did not return after the client hung up")
	}
}

// Close ends a ServeCodec blocked reading, and waits for its running calls.
func TestCloseEndsServeCodec(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	cs, ss := net.Pipe()
	defer cs.Close()
	served := make(chan struct{})
	go func() {
		s.ServeCodec(jsonrpc.NewServerCodec(ss))
		close(served)
	}()
	c := jsonrpc.NewClient(cs)
	call := c.Go("Arith.Slow", Args{A: 1}, new(int), nil)
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	close(a.block)
	for _, ch := range []chan struct{}{closed, served} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("deadlock: Close or ServeCodec did not end")
		}
	}
	select {
	case <-call.Done:
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: the pending call did not end")
	}
	// After Close, ServeCodec refuses at once and closes the codec.
	cs2, ss2 := net.Pipe()
	s.ServeCodec(jsonrpc.NewServerCodec(ss2))
	if _, err := cs2.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a codec served after Close: %v, want closed pipe", err)
	}
}

// Malformed JSON, or a request over the message limit, closes that
// connection only.
func TestBadJSONClosesOnlyItsConnection(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		log     string
	}{
		{"malformed", `{"method": "Arith.Add", "params": [` + "\x00", "reading request header"},
		{"over the limit", `{"method":"Arith.Echo","params":["` + strings.Repeat("x", 4096) + `"],"id":1}`, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, addr, sink := startServer(t, WithMaxMessageSize(1024))
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := io.WriteString(nc, tt.payload); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			// Closed with our bytes unread, the connection may be reset.
			if n, err := io.Copy(io.Discard, nc); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || n != 0 {
				t.Fatalf("the server answered %d bytes, %v; want the connection closed", n, err)
			}
			if !strings.Contains(sink.String(), tt.log) {
				t.Fatalf("log = %q, want it to mention %q", sink.String(), tt.log)
			}
			c, err := jsonrpc.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var echo string
			if err := c.Call("Arith.Echo", "fits", &echo); err != nil || echo != "fits" {
				t.Fatalf("another connection: %q, %v", echo, err)
			}
		})
	}
}

// firstBytesOf returns the first two bytes a client writes to a fresh
// connection when it calls.
func firstBytesOf(t *testing.T, call func(addr string)) [2]byte {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go call(l.Addr().String())
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var b [2]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		t.Fatal(err)
	}
	return b
}

// Serve tells JSON from gob by the first two bytes of a connection, as the
// streams real clients start show.
func TestSniffTellsClientsApart(t *testing.T) {
	tests := []struct {
		name string
		call func(addr string)
		json bool
	}{
		{"semrpc plain", func(addr string) {
			c, err := Dial(context.Background(), "tcp", addr)
			if err == nil {
				c.Call(context.Background(), "Arith.Add", Args{1, 2}, new(int))
				c.Close()
			}
		}, false},
		{"semrpc at-most-once", func(addr string) {
			c, err := Dial(context.Background(), "tcp", addr, WithSemantics(semantics.AtMostOnce(semantics.MaxAttempts(1))))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c.Call(ctx, "Arith.Add", Args{1, 2}, new(int))
				c.Close()
			}
		}, false},
		{"stock net/rpc", func(addr string) {
			c, err := stdrpc.Dial("tcp", addr)
			if err == nil {
				c.Call("Arith.Add", Args{1, 2}, new(int))
				c.Close()
			}
		}, false},
		{"stock jsonrpc", func(addr string) {
			c, err := jsonrpc.Dial("tcp", addr)
			if err == nil {
				c.Call("Arith.Add", Args{1, 2}, new(int))
				c.Close()
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := firstBytesOf(t, tt.call)
			if got := looksLikeJSON(b); got != tt.json {
				t.Fatalf("first bytes %#x read as JSON = %v, want %v", b, got, tt.json)
			}
		})
	}
}

// A gob stream whose first message is 123 bytes long starts with '{', then
// the first byte of a type definition's id: still gob.
func TestLooksLikeJSON(t *testing.T) {
	tests := []struct {
		in   [2]byte
		want bool
	}{
		{[2]byte{'{', '"'}, true},
		{[2]byte{'{', '}'}, true},
		{[2]byte{'{', '\n'}, true},
		{[2]byte{'{', ' '}, true},
		{[2]byte{'{', 0xff}, false}, // gob: a 123-byte type definition
		{[2]byte{'{', 0xfe}, false}, // the same, with a type id over 127
		{[2]byte{0x47, 0xff}, false},
		{[2]byte{'[', '{'}, false}, // a JSON-RPC batch: not what jsonrpc speaks
		{[2]byte{'{', 'x'}, false},
	}
	for _, tt := range tests {
		if got := looksLikeJSON(tt.in); got != tt.want {
			t.Errorf("looksLikeJSON(%q) = %v, want %v", tt.in[:], got, tt.want)
		}
	}
}

// An accepted connection that has sent nothing yet gets the gob shutdown
// notice, as a gob connection does, then is closed.
func TestShutdownNoticeReachesIdleConnection(t *testing.T) {
	s, _, addr, _ := startServer(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitOthers(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(nc)
	if err != nil {
		t.Fatal(err)
	}
	var resp wireResponse
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&resp); err != nil {
		t.Fatalf("decoding the notice from %d bytes: %v", len(b), err)
	}
	if resp.ServiceMethod != goAwayMethod || resp.Seq != goAwaySeq || resp.Code != CodeShuttingDown {
		t.Fatalf("notice = %+v", resp)
	}
}

// A semrpc client whose idle connection was accepted but not yet sniffed
// when Shutdown starts: its next call is refused, not executed (never "may
// have executed" on the old connection).
func TestIdleClientCallAfterShutdownIsNotExecuted(t *testing.T) {
	s, _, addr, _ := startServer(t)
	c := dial(t, addr, WithEagerDial())
	waitOthers(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, new(int))
	if !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("call after Shutdown: %v, want not executed", err)
	}
}

// WithJSONCodec(false) makes Serve speak gob only: a JSON request is
// malformed gob, and its connection is closed unanswered.
func TestJSONCodecOffServesGobOnly(t *testing.T) {
	_, _, addr, _ := startServer(t, WithJSONCodec(false))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Longer than the 123 bytes that '{' announces as a gob message.
	req := `{"method":"Arith.Echo","params":["` + strings.Repeat("x", 200) + `"],"id":1}`
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, nc); err != nil || n != 0 {
		t.Fatalf("the server answered %d bytes, %v; want the connection closed", n, err)
	}
	gc := dial(t, addr)
	var sum int
	if err := gc.Call(ctxT(t), "Arith.Add", Args{1, 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("gob call = %d, %v", sum, err)
	}
}

func jsonClientCodec(nc net.Conn) stdrpc.ClientCodec { return jsonrpc.NewClientCodec(nc) }

// waitOthers waits until n connections are accepted but not yet sniffed
// (or served through ServeCodec).
func waitOthers(t *testing.T, s *Server, n int) {
	t.Helper()
	others := func() int {
		s.lmu.Lock()
		defer s.lmu.Unlock()
		return len(s.others)
	}
	if !testwait.Until(testwait.Deadline, func() bool { return others() == n }) {
		t.Fatalf("%d unsniffed connections, want %d", others(), n)
	}
}

// A gob request that arrives, after the notice, on a connection the
// server had not sniffed yet is answered ErrShuttingDown and not run, as
// on a gob connection (R18).
func TestRequestAfterNoticeOnUnsniffedConnectionIsRefused(t *testing.T) {
	s, a, addr, _ := startServer(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitOthers(t, s, 1)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	dec := gob.NewDecoder(nc)
	var notice wireResponse
	if err := dec.Decode(&notice); err != nil || notice.ServiceMethod != goAwayMethod {
		t.Fatalf("notice = %+v, %v", notice, err)
	}
	if err := dec.Decode(&emptyBody{}); err != nil {
		t.Fatal(err)
	}
	// A stock client ignores the notice and calls.
	enc := gob.NewEncoder(nc)
	if err := enc.Encode(&wireRequest{ServiceMethod: "Arith.Add", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(Args{1, 2}); err != nil {
		t.Fatal(err)
	}
	var resp wireResponse
	if err := dec.Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if resp.Seq != 1 || resp.Code != CodeShuttingDown || !strings.Contains(resp.Error, `"Arith.Add" not run`) {
		t.Fatalf("answer = %+v", resp)
	}
	nc.Close()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if n := a.calls.Load(); n != 0 {
		t.Fatalf("%d executions during Shutdown, want 0", n)
	}
}

// FuzzServeJSON feeds arbitrary bytes to a JSON-RPC connection: the server
// answers or closes it, never panics, and stops every goroutine.
func FuzzServeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"method":"Arith.Add","params":[{"A":1,"B":2}],"id":1}`,
		`{"method":"Arith.Add","params":[{"A":1,"B":2}],"id":1}{"method":"Arith.Echo","params":["x"],"id":"two"}`,
		`{"method":"Arith.Missing","params":[{}],"id":null}`,
		`{"method":"Arith.Add","params":"nope","id":1}`,
		`{"method":"Arith.Add","id":1}`,
		`{"method":"_semrpc.Methods","params":[{}],"id":7}`,
		`{"method":`,
		`{}`,
	} {
		f.Add([]byte(seed))
	}
	s := NewServer(WithLogger(discardLogger()), WithMaxMessageSize(4096))
	if err := s.RegisterName("Arith", jsonFuzzArith{}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || in[0] != '{' {
			return // not sniffed as JSON
		}
		cs, ss := net.Pipe()
		done := make(chan struct{})
		go func() {
			io.Copy(io.Discard, cs)
			close(done)
		}()
		served := make(chan struct{})
		go func() {
			s.serveJSON(ss)
			close(served)
		}()
		cs.Write(in)
		cs.Close()
		<-served
		<-done
	})
}

// jsonFuzzArith is Arith without the methods that wait or count.
type jsonFuzzArith struct{}

func (jsonFuzzArith) Add(args Args, reply *int) error {
	*reply = args.A + args.B
	return nil
}

func (jsonFuzzArith) Echo(s string, reply *string) error {
	*reply = s
	return nil
}

func (jsonFuzzArith) Panic(args Args, reply *int) error { panic("boom") }

// jsonOdd has replies JSON cannot carry.
type jsonOdd struct{}

func (jsonOdd) NaN(_ int, reply *float64) error {
	*reply = math.NaN()
	return nil
}

func (jsonOdd) Big(n int, reply *string) error {
	*reply = strings.Repeat("x", n)
	return nil
}

// A reply with no JSON form, or over the limit, is answered as an error;
// the connection stays in use.
func TestJSONReplyThatCannotBeSentIsAnError(t *testing.T) {
	s, _, addr, _ := startServer(t, WithMaxMessageSize(1024))
	if err := s.RegisterName("Odd", jsonOdd{}); err != nil {
		t.Fatal(err)
	}
	c, err := jsonrpc.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		method string
		arg    int
		want   string
	}{
		{"Odd.NaN", 0, "Odd.NaN ran, but its reply could not be encoded"},
		{"Odd.Big", 2000, "Odd.Big ran, but its reply (2002 bytes) is over the message limit (1024 bytes)"},
	}
	for _, tt := range tests {
		var reply any
		err := c.Call(tt.method, tt.arg, &reply)
		if se, ok := err.(stdrpc.ServerError); !ok || !strings.Contains(string(se), tt.want) {
			t.Fatalf("%s: %#v, want a ServerError containing %q", tt.method, err, tt.want)
		}
	}
	var big string
	if err := c.Call("Odd.Big", 10, &big); err != nil || big != "xxxxxxxxxx" {
		t.Fatalf("Big(10) after the refusals = %q, %v", big, err)
	}
}

func TestMalformedJSONRPCRequestIsLoggedWithItsPeer(t *testing.T) {
	_, _, addr, sink := startServer(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, `{ not json`); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil { // the server closes it
		t.Fatalf("waiting for the server to close the connection: %v", err)
	}
	want := "JSON-RPC connection from " + nc.LocalAddr().String()
	if !strings.Contains(sink.String(), want) {
		t.Fatalf("log %q lacks %q", sink.String(), want)
	}
}
