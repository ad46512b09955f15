package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// tokenGuard is a server interceptor that refuses every request without
// the metadata token=s3cret, and notes what it saw.
type tokenGuard struct {
	mu     sync.Mutex // protects following
	seen   []string   // "ServiceMethod token" of each request
	opened []semantics.ClientID
}

func (g *tokenGuard) intercept(ctx context.Context, ci *CallInfo, next Handler) error {
	md, _ := FromIncomingContext(ctx)
	token := md.First("token")
	g.mu.Lock()
	g.seen = append(g.seen, ci.ServiceMethod+" "+token)
	g.mu.Unlock()
	if token != "s3cret" {
		return fmt.Errorf("auth: %s refused, no valid token: %w", ci.ServiceMethod, ErrRejected)
	}
	err := next(ctx, ci)
	if rep, ok := ci.Reply.(*OpenReply); ok && err == nil {
		g.mu.Lock()
		g.opened = append(g.opened, rep.Client)
		g.mu.Unlock()
	}
	return err
}

func (g *tokenGuard) saw(entry string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.seen, entry)
}

// TestInterceptorRefusalOpensNoSession: the session handshake goes through
// the server's interceptors like any method. A client without the token an
// interceptor asks for gets a clear refusal, not executed, and the server
// opens no session; with the token (from the call's context, or added by a
// client interceptor) the at-most-once call works; the interceptor sees
// _semrpc.Open and _semrpc.Close with the caller's metadata.
func TestInterceptorRefusalOpensNoSession(t *testing.T) {
	g := &tokenGuard{}
	s, a, addr, _ := startServer(t, WithServerInterceptor(g.intercept))

	anon := dial(t, addr, WithSemantics(atMostOnce()))
	var reply int
	err := anon.Call(ctxT(t), "Arith.Add", Args{A: 1, B: 2}, &reply)
	if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "no valid token") {
		t.Fatalf("call without the token: %v, want a refusal (not executed) saying why", err)
	}
	if n := a.calls.Load(); n != 0 {
		t.Fatalf("method ran %d times", n)
	}
	if st := s.Table().Stats(); st.Opened != 0 || s.Table().Len() != 0 {
		t.Fatalf("table %+v, Len %d after refused handshakes: want no session", st, s.Table().Len())
	}
	if !g.saw(openMethod + " ") {
		t.Fatalf("the interceptor did not see the handshake: %q", g.seen)
	}

	// The token in the call's context reaches the handshake.
	c := dial(t, addr, WithSemantics(atMostOnce()))
	ctx := AppendToOutgoingContext(ctxT(t), "token", "s3cret")
	if err := c.Call(ctx, "Arith.Add", Args{A: 1, B: 2}, &reply); err != nil || reply != 3 {
		t.Fatalf("call with the token: %d, %v", reply, err)
	}
	if !g.saw(openMethod + " s3cret") {
		t.Fatalf("the interceptor did not see the handshake with its token: %q", g.seen)
	}
	// So does the token a client interceptor adds.
	addToken := func(ctx context.Context, ci *CallInfo, next Handler) error {
		return next(AppendToOutgoingContext(ctx, "token", "s3cret"), ci)
	}
	ci := dial(t, addr, WithSemantics(atMostOnce()), WithClientInterceptor(addToken))
	if err := ci.Call(ctxT(t), "Arith.Add", Args{A: 2, B: 2}, &reply); err != nil || reply != 4 {
		t.Fatalf("call with a client interceptor's token: %d, %v", reply, err)
	}
	if st := s.Table().Stats(); st.Opened != 2 || s.Table().Len() != 2 || a.calls.Load() != 2 {
		t.Fatalf("table %+v, %d calls: want 2 sessions and 2 calls", st, a.calls.Load())
	}

	// Client.Close ends the session with the handshake's token.
	c.Close()
	ci.Close()
	if st := s.Table().Stats(); st.Closed != 2 || s.Table().Len() != 0 {
		t.Fatalf("table %+v after Close: want both sessions closed", st)
	}
	if !g.saw(closeMethod + " s3cret") {
		t.Fatalf("the interceptor did not see _semrpc.Close with the token: %q", g.seen)
	}
}

// closeArgs is an ArgsDecoder for _semrpc.Close, with no metadata.
type closeArgs CloseArgs

func (a closeArgs) DecodeArgs(v any) error {
	*v.(*CloseArgs) = CloseArgs(a)
	return nil
}

// TestInterceptorRefusalClosesNothing: a _semrpc.Close refused by an
// interceptor ends no session, even naming a live one.
func TestInterceptorRefusalClosesNothing(t *testing.T) {
	g := &tokenGuard{}
	s, _, addr, _ := startServer(t, WithServerInterceptor(g.intercept))
	c := dial(t, addr, WithSemantics(atMostOnce()))
	var reply int
	if err := c.Call(AppendToOutgoingContext(ctxT(t), "token", "s3cret"), "Arith.Add", Args{A: 1, B: 2}, &reply); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	ids := slices.Clone(g.opened)
	g.mu.Unlock()
	if len(ids) != 1 {
		t.Fatalf("sessions opened: %v", ids)
	}
	_, err := s.Handle(ctxT(t), closeMethod, nil, closeArgs{IDs: ids})
	if code, _ := EncodeError(err); !errors.Is(err, ErrRejected) || code != CodeRejected {
		t.Fatalf("Close without the token: %v (code %v), want a refusal", err, code)
	}
	if st := s.Table().Stats(); st.Closed != 0 || s.Table().Len() != 1 {
		t.Fatalf("table %+v after a refused Close: want the session still there", st)
	}
}

// TestInterceptorPlainErrorOnHandshakeIsARefusal: an interceptor that
// refuses the handshake with an error not wrapping ErrRejected reaches the
// caller as a refusal of the handshake (not executed, permanent), with the
// interceptor's text.
func TestInterceptorPlainErrorOnHandshakeIsARefusal(t *testing.T) {
	deny := func(ctx context.Context, ci *CallInfo, next Handler) error {
		if ci.ServiceMethod == openMethod {
			return errors.New("auth: no sessions for you")
		}
		return next(ctx, ci)
	}
	s, a, addr, _ := startServer(t, WithServerInterceptor(deny))
	c := dial(t, addr, WithSemantics(atMostOnce()))
	var reply int
	err := c.Call(ctxT(t), "Arith.Add", Args{A: 1, B: 2}, &reply)
	if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, ErrRejected) || !semantics.IsPermanent(err) ||
		!strings.Contains(err.Error(), "refused the at-most-once session handshake: auth: no sessions for you") {
		t.Fatalf("call whose handshake an interceptor refused: %v, want a permanent refusal with the interceptor's text", err)
	}
	if a.calls.Load() != 0 || s.Table().Len() != 0 {
		t.Fatalf("%d calls ran, %d sessions", a.calls.Load(), s.Table().Len())
	}
}
