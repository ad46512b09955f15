package main

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/internal/pgtest"
	"github.com/semrpc/semrpc/rpc"
	"go.uber.org/goleak"
)

// childEnv, when set, makes the test binary run the kv command itself with
// the arguments after "--": crash tests start servers this way, so that
// they can kill them.
const childEnv = "SEMRPC_KV_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		if os.Getenv(holdWritesEnv) == "1" {
			testServerOptions = append(testServerOptions, rpc.WithServerInterceptor(holdWrites))
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	pgtest.Main(leakCheck{m}, &pg, nil)
}

// holdWritesEnv, when set in a server process's environment, makes the
// server hold the reply of every Append after the call ran: the process
// answers nothing more for it, as if it died right after the method.
const holdWritesEnv = "SEMRPC_KV_HOLD_WRITES"

// holdWrites is the server interceptor of holdWritesEnv. It says on stderr
// that it holds a reply, so that a test knows the call ran there.
func holdWrites(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
	err := next(ctx, call)
	if call.ServiceMethod == kvservice.ServiceName+".Append" {
		fmt.Fprintf(os.Stderr, "kv-test: holding the reply of %s (err %v)\n", call.ServiceMethod, err)
		<-ctx.Done() // the caller's deadline, or never: the test kills the process
	}
	return err
}

// pg is the PostgreSQL server of the tests of kv servers on PostgreSQL.
var pg *pgtest.Server

// leakCheck runs the tests, then fails them if a goroutine outlives them
// (but for the one that waits for the PostgreSQL server).
type leakCheck struct{ m *testing.M }

func (l leakCheck) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/semrpc/semrpc/internal/pgtest.(*Server).start.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}
