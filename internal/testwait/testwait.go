// Package testwait waits, in tests, for something that happens on another
// goroutine: a request to be queued, a connection to close, a counter to
// reach a value. It polls, because what a test waits for is usually a
// state it can look at but not a signal it can receive.
//
// For fails the test when the condition does not hold within a generous
// deadline, naming what it waited for; Until reports whether it held
// within a duration the test chooses, for tests that go on either way.
package testwait

import (
	"testing"
	"time"
)

// Deadline is how long For waits before it fails the test: long enough
// that only a condition that never comes reaches it, even on a loaded
// machine under the race detector.
const Deadline = 10 * time.Second

// poll is the pause between two looks at a condition.
const poll = time.Millisecond

// For waits until cond holds. If it does not within Deadline, For fails
// the test, saying that it waited for what.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Until(Deadline, cond) {
		t.Fatalf("timed out after %v waiting for %s", Deadline, what)
	}
}

// Until waits until cond holds or d has passed, and reports whether cond
// held. cond is looked at at least once, and once more after d.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(poll)
	}
	return true
}
