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
	dir := c.traceDir
	if dir == "" {
		dir = os.TempDir()
	}
	for i, n := range run.Networks() {
		path, err := writeTimeline(dir, fmt.Sprintf("labtest-%s-net%d-*.html", fileSafe(t.Name()), i), n)
		if err != nil {
			t.Logf("labtest: trace of network %d not written: %v", i, err)
			continue
		}
		t.Logf("labtest: trace of network %d: %s", i, path)
	}
}

func writeTimeline(dir, pattern string, n labhook.Network) (string, error) {
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
