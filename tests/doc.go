// Package tests holds semrpc's cross-package failure-injection suites: each
// guarantee of DESIGN.md checked under injected faults, over TCP (through
// tests/faultproxy) and over the simulated lab network (labrpc). It has no
// non-test code beyond shared helpers.
//
// Every randomised test takes its seed from SEMRPC_SEED when set and prints
// the seed it used on failure, so a failing run can be replayed:
//
//	SEMRPC_SEED=1234 go test -race -run TestName ./tests/
//
// SEMRPC_SOAK=N (make soak sets 10) runs the long versions, N times longer.
package tests
