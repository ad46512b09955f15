package rpc

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Greeter reads its caller's metadata and can answer without a JSON form.
type Greeter struct{}

type GreetArgs struct{ Name string }

func (Greeter) Hello(ctx context.Context, args GreetArgs, reply *string) error {
	md, _ := FromIncomingContext(ctx)
	*reply = strings.Join(md.Get("greeting"), " ") + ", " + args.Name
	return nil
}

func (Greeter) NaN(args GreetArgs, reply *float64) error {
	*reply = math.NaN()
	return nil
}

// TestCallJSON: CallJSON runs a method from JSON arguments and returns its
// reply in JSON, with the caller's metadata; arguments that do not fit the
// argument type (an unknown field, a second value, the wrong type) are
// refused with ErrBadArguments, not executed, naming the field; a reply
// with no JSON form is unusable (the method ran); a JSON call of a reserved
// method other than the introspection ones is an unknown method.
func TestCallJSON(t *testing.T) {
	s, arith, addr, _ := startServer(t)
	if err := s.Register(Greeter{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	reply, err := c.CallJSON(ctx, "Arith.Add", []byte(`{"A":2,"B":40}`))
	if err != nil || string(reply) != "42" {
		t.Fatalf("Arith.Add: %s, %v; want 42", reply, err)
	}
	reply, err = c.CallJSON(AppendToOutgoingContext(ctx, "greeting", "hello"), "Greeter.Hello", []byte(`{"Name":"ada"}`))
	if err != nil || string(reply) != `"hello, ada"` {
		t.Fatalf("Greeter.Hello: %s, %v; want \"hello, ada\"", reply, err)
	}
	if reply, err = c.CallJSON(ctx, HealthMethod, nil); err != nil || !strings.Contains(string(reply), `"Status":"SERVING"`) {
		t.Fatalf("%s: %s, %v", HealthMethod, reply, err)
	}
	before := arith.calls.Load()
	for _, tt := range []struct{ args, want string }{
		{`{"A":2,"C":40}`, `unknown field "C"`},
		{`{"A":2} {"B":3}`, "more than one JSON value"},
		{`[1,2]`, "cannot unmarshal array"},
	} {
		_, err := c.CallJSON(ctx, "Arith.Add", []byte(tt.args), WithSemantics(semantics.AtLeastOnce()))
		if !errors.Is(err, ErrBadArguments) || !errors.Is(err, ErrNotExecuted) || !strings.Contains(err.Error(), tt.want) ||
			!strings.Contains(err.Error(), "Arith.Add") {
			t.Errorf("arguments %s: %v; want ErrBadArguments, not executed, naming Arith.Add and saying %q", tt.args, err, tt.want)
		}
	}
	if n := arith.calls.Load(); n != before {
		t.Errorf("Arith ran %d times for arguments it refused", n-before)
	}
	if _, err := c.CallJSON(ctx, "Greeter.NaN", nil); !errors.Is(err, ErrReplyUnusable) || !strings.Contains(err.Error(), "no JSON form") {
		t.Errorf("Greeter.NaN: %v; want ErrReplyUnusable, no JSON form", err)
	}
	for _, m := range []string{openMethod, JSONCallMethod} {
		if _, err := c.CallJSON(ctx, m, nil); !errors.Is(err, ErrUnknownMethod) {
			t.Errorf("%s through CallJSON: %v; want ErrUnknownMethod", m, err)
		}
	}
}

// TestCallJSONGoesThroughTheTable: a JSON call with a session header is an
// at-most-once call of the method it names: a duplicate is answered from
// the table, in JSON, without running the method again.
func TestCallJSONGoesThroughTheTable(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	defer s.Close()
	arith := new(Arith)
	if err := s.Register(arith); err != nil {
		t.Fatal(err)
	}
	id, err := s.Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	h := &semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: s.Table().Epoch()}
	args := valueDecoder{jsonCallArgs{Method: "Arith.Add", Args: []byte(`{"A":1,"B":2}`)}}
	for i := 0; i < 2; i++ {
		reply, err := s.Handle(context.Background(), JSONCallMethod, h, args)
		if err != nil || string(reply.(*jsonCallReply).Reply) != "3" {
			t.Fatalf("attempt %d: %v, %v; want 3", i+1, reply, err)
		}
	}
	if n, dup := arith.calls.Load(), s.Table().Stats().Duplicates; n != 1 || dup != 1 {
		t.Fatalf("Arith.Add ran %d times, %d duplicates answered; want 1 and 1", n, dup)
	}
}

// TestCallJSONFollowsTheJSONCodecOption: WithJSONCodec(false) turns JSON
// calls off with the JSON-RPC codec.
func TestCallJSONFollowsTheJSONCodecOption(t *testing.T) {
	_, _, addr, _ := startServer(t, WithJSONCodec(false))
	c, err := Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CallJSON(context.Background(), "Arith.Add", []byte(`{}`)); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("CallJSON with the JSON codec off: %v; want ErrUnknownMethod", err)
	}
}

// TestCallJSONErrorsNameTheMethod: an error of CallJSON names the method
// called, not the reserved method that carried it, and keeps its verdict.
func TestCallJSONErrorsNameTheMethod(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c, err := Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.CallJSON(ctx, "Arith.Slow", []byte(`{}`)) // blocks until the test ends
	if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CallJSON past its deadline: %v; want may have executed, context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "rpc: Arith.Slow: ") || strings.Contains(err.Error(), JSONCallMethod) {
		t.Errorf("the error names %s instead of Arith.Slow: %v", JSONCallMethod, err)
	}
	var ge *semantics.GiveUpError
	if !errors.As(err, &ge) {
		t.Errorf("errors.As finds no *semantics.GiveUpError in %v", err)
	}
}
