package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/semrpc/semrpc/internal/pgtest"
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
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	pgtest.Main(leakCheck{m}, &pg, nil)
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
