package labrpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Crasher's handler panics, as a student's buggy handler might.
type Crasher struct{}

type BoomArgs struct{ Index int }

func (c *Crasher) Boom(args BoomArgs, reply *int) {
	var log []int
	*reply = log[args.Index] // index out of range
}

func crasherNet(t *testing.T) (*Network, *ClientEnd) {
	t.Helper()
	net := MakeNetworkSeed(1)
	t.Cleanup(net.Cleanup)
	srv := MakeServer()
	srv.AddService(MakeService(&Crasher{}))
	srv.AddService(MakeService(&Echo{}))
	net.AddServer("s", srv)
	e := net.MakeEnd("e")
	net.Connect("e", "s")
	net.Enable("e", true)
	return net, e
}

const crashChildEnv = "LABRPC_TEST_CRASH_CHILD"

// TestHandlerPanicCrashesCallWithHandlersStack runs itself in a child
// process whose handler panics under ClientEnd.Call: the child must die,
// printing the panic and the handler's own frame, as with the classic
// network, instead of turning the panic into a false return.
func TestHandlerPanicCrashesCallWithHandlersStack(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		_, e := crasherNet(t)
		var n int
		e.Call("Crasher.Boom", BoomArgs{Index: 3}, &n)
		fmt.Println("CHILD SURVIVED")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandlerPanicCrashesCallWithHandlersStack$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child did not fail (err %v):\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"panic: runtime error: index out of range", "(*Crasher).Boom", "classic_test.go"} {
		if !strings.Contains(s, want) {
			t.Errorf("child output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "CHILD SURVIVED") || strings.Contains(s, "[recovered") {
		t.Errorf("the panic was recovered:\n%s", s)
	}
}

// Over RoundTrip (an rpc.Client's transport) the server core keeps its
// recovery, as over TCP: the panic is an error and the server serves on.
func TestHandlerPanicOverRoundTripIsAnErrorAndServerServesOn(t *testing.T) {
	buf := captureLog(t)
	_, e := crasherNet(t)
	var n int
	err := e.RoundTrip(context.Background(), &rpc.Request{ServiceMethod: "Crasher.Boom", Args: BoomArgs{Index: 3}}, &n)
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("RoundTrip error = %v, want the method's panic", err)
	}
	if !strings.Contains(buf.String(), "index out of range") {
		t.Errorf("the server core did not log the panic:\n%s", buf.String())
	}
	if !e.Call("Echo.Double", 4, &n) || n != 8 {
		t.Error("the server stopped serving after a recovered panic")
	}
}

func TestUnknownMethodCrashesCallListingMethods(t *testing.T) {
	tests := []struct {
		method string
		want   string
	}{
		{"Echo.Missing", `can't find method "Echo.Missing"`},
		{"Missing.Double", `can't find service "Missing.Double"`},
		{"nodot", "ill-formed"},
	}
	for _, tt := range tests {
		subtest(t, tt.method, func(t *testing.T) {
			_, e := crasherNet(t)
			var msg string
			func() {
				defer func() {
					p := recover()
					if p == nil {
						t.Fatal("Call did not panic")
					}
					msg = fmt.Sprint(p)
				}()
				var n int
				e.Call(tt.method, 1, &n)
			}()
			for _, want := range []string{tt.want, "Crasher.Boom", "Echo.Double", "Echo.Add", `on end e`} {
				if !strings.Contains(msg, want) {
					t.Errorf("panic %q lacks %q", msg, want)
				}
			}
		})
	}
}

func TestUnknownMethodOverRoundTripIsARefusal(t *testing.T) {
	_, e := crasherNet(t)
	var n int
	err := e.RoundTrip(context.Background(), &rpc.Request{ServiceMethod: "Echo.Missing", Args: 1}, &n)
	if !errors.Is(err, rpc.ErrUnknownMethod) || !errors.Is(err, semantics.ErrRejected) {
		t.Errorf("RoundTrip error = %v, want a refusal for an unknown method", err)
	}
}

func TestMethodNamesFollowTheHandlerShapes(t *testing.T) {
	got := strings.Join(methodNames("Shapes", &shapes{}), ",")
	if want := "Shapes.Ctx,Shapes.Err,Shapes.Lab"; got != want {
		t.Errorf("methodNames = %s, want %s", got, want)
	}
}

type shapes struct{}

func (*shapes) Lab(args int, reply *int)                                 {}
func (*shapes) Err(args int, reply *int) error                           { return nil }
func (*shapes) Ctx(ctx context.Context, args int, reply *int) error      { return nil }
func (*shapes) NotReplyPointer(args int, reply int)                      {}
func (*shapes) TwoResults(args int, reply *int) (int, error)             { return 0, nil }
func (*shapes) OneArg(args int)                                          {}
func (*shapes) WrongResult(args int, reply *int) int                     { return 0 }
func (*shapes) ThreeArgsNoCtx(a int, b int, reply *int)                  {}
func (*shapes) CtxNoPointer(ctx context.Context, args int, reply string) {}
