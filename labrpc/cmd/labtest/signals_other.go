//go:build !unix

package main

import "os"

// diedOf returns nil: outside Unix, a child's exit status says it all.
func diedOf(ps *os.ProcessState) os.Signal { return nil }

// raise does nothing outside Unix; the caller exits with a status instead.
func raise(sig os.Signal) {}
