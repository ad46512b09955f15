package labtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
)

// traceTimeout bounds how long writing one network's timeline may take: a
// network of an abandoned bubble may have its lock held for good.
const traceTimeout = 5 * time.Second

// writeTraces writes, if t failed and traces are on, the timeline of every labrpc network
// made during run to a file and logs its path.
func writeTraces(t *testing.T, run *labhook.Run, c config) {
	t.Helper()
	if !t.Failed() || !c.trace {
		return
	}
	var lines []string // logged here, so that t.Helper names the test's line
	writeAll(t.Name(), run, c, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	for _, l := range lines {
		t.Log(l)
	}
}

func writeAll(test string, run *labhook.Run, c config, log func(format string, args ...any)) {
	dir := c.traceDir
	if dir == "" {
		dir = os.TempDir()
	}
	for i, n := range run.Networks() {
		path, err := writeTimeline(dir, fmt.Sprintf("labtest-%s-net%d-*.html", fileSafe(test), i), n)
		if err != nil {
			log("labtest: trace of network %d not written: %v", i, err)
			continue
		}
		log("labtest: trace of network %d: %s", i, path)
	}
}

// timeoutMargin is how long before the go test -timeout a test still
// running has its timelines written: the timeout's panic ends the process
// without running the test's cleanups.
const timeoutMargin = 2 * time.Second

// traceBeforeTimeout writes the timelines of run's networks shortly before
// the go test -timeout ends the process, if the test is still running
// then, and prints their paths on the standard error (the test's log dies
// with the process). The returned function cancels it and waits for a
// write in progress.
func traceBeforeTimeout(t *testing.T, run *labhook.Run, c config) (stop func()) {
	deadline, ok := t.Deadline()
	if !ok || !c.trace {
		return func() {}
	}
	wait := time.Until(deadline) - timeoutMargin
	if wait <= 0 {
		wait = time.Until(deadline) / 2
	}
	name := t.Name()
	done := make(chan struct{})
	timer := time.AfterFunc(wait, func() {
		defer close(done)
		fmt.Fprintf(os.Stderr, "labtest: %s is still running %v before the go test -timeout; its timelines so far:\n", name, timeoutMargin)
		writeAll(name, run, c, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
	})
	return func() {
		if !timer.Stop() {
			<-done
		}
	}
}

func writeTimeline(dir, pattern string, n labhook.Network) (string, error) {
	// LABTEST_TRACE_DIR may name a directory not made yet.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("WriteTimeline panicked: %v", r)
			}
		}()
		done <- n.WriteTimeline(f)
	}()
	select {
	case err = <-done:
	case <-time.After(traceTimeout):
		err = fmt.Errorf("WriteTimeline did not return within %v", traceTimeout)
		// The writer may still use f: leave it open and the file in place.
		return f.Name(), err
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// fileSafe turns a test name into a file name component.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}
