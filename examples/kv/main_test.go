package main

import (
	"os"
	"testing"

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
	goleak.VerifyTestMain(m)
}
