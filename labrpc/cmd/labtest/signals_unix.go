//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

// diedOf returns the signal that ended a child process, or nil.
func diedOf(ps *os.ProcessState) os.Signal {
	if ps == nil {
		return nil
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return nil
}

// raise ends labtest with sig, as its child ended, so that its own parent
// (go test, or a shell) reports the signal as it would without labtest.
// It returns only if the signal did not end the process.
func raise(sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return
	}
	signal.Reset(s)
	syscall.Kill(os.Getpid(), s)
	time.Sleep(100 * time.Millisecond) // the signal is delivered asynchronously
}
