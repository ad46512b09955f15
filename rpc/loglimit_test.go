package rpc

import (
	"bytes"
	"encoding/gob"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
)

// fakeClock is a clock for a logLimiter that moves only when told.
type fakeClock struct {
	base time.Time
	off  atomic.Int64
}

func newFakeClock() *fakeClock               { return &fakeClock{base: time.Now()} }
func (c *fakeClock) now() time.Time          { return c.base.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func logLines(sink *logSink) []string {
	s := strings.TrimSuffix(sink.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestLogLimiterBurstThenRateThenSummary(t *testing.T) {
	clock := newFakeClock()
	ll := &logLimiter{now: clock.now}
	sink := &logSink{}
	l := log.New(sink, "", 0)
	for i := range 25 {
		ll.printf(l, "line %d", i)
	}
	if got := logLines(sink); len(got) != logBurst || got[logBurst-1] != "line 9" {
		t.Fatalf("after 25 lines at once the log has %d: %q; want the first %d", len(got), got, logBurst)
	}
	clock.advance(logEvery)
	ll.printf(l, "line 25")
	ll.printf(l, "line 26") // no token left
	got := logLines(sink)
	if len(got) != logBurst+2 || got[logBurst] != "rpc: 15 log lines suppressed in the last 200ms" || got[logBurst+1] != "line 25" {
		t.Fatalf("after one more token the log ends %q; want the summary of 15 lines, then line 25", got[logBurst:])
	}
	// A long quiet time refills the burst, no more.
	clock.advance(time.Hour)
	for i := range 2 * logBurst {
		ll.printf(l, "late %d", i)
	}
	got = logLines(sink)[logBurst+2:]
	if len(got) != logBurst+1 || got[0] != "rpc: 1 log lines suppressed in the last 1h0m0s" || got[logBurst] != "late 9" {
		t.Fatalf("after an hour the log got %q; want the summary and %d lines", got, logBurst)
	}
}

// XFAKEXLOGXLINE is a gob type whose name the tests replace, in the
// encoded stream, by one that holds a newline; its field does not fit
// wireRequest's, so gob's error quotes the name.
type XFAKEXLOGXLINE struct{ ServiceMethod int }

// forgedGob is a gob stream that a server fails to read as a request
// header, with an error quoting a type name that starts a new line with
// "FAKE LOG LINE".
func forgedGob(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(XFAKEXLOGXLINE{ServiceMethod: 1}); err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(buf.Bytes(), []byte("XFAKEXLOGXLINE"), []byte("\nFAKE LOG LINE"), 1)
	if bytes.Equal(forged, buf.Bytes()) {
		t.Fatal("the type name is not in the gob stream")
	}
	return forged
}

func noForgedLine(t *testing.T, sink *logSink) {
	t.Helper()
	for _, line := range logLines(sink) {
		if strings.HasPrefix(line, "FAKE") {
			t.Fatalf("a peer forged a log line: %q\nlog:\n%s", line, sink)
		}
	}
}

// A type name a peer chose is quoted in the log: its newline cannot start
// a line of the peer's making.
func TestPeerTypeNameCannotForgeALogLine(t *testing.T) {
	_, _, addr, sink := startServer(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(forgedGob(t)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, nc) // until the server closes the connection
	testwait.Until(5*time.Second, func() bool { return strings.Contains(sink.String(), "closing connection") })
	if !strings.Contains(sink.String(), `\nFAKE LOG LINE`) {
		t.Fatalf("the log does not quote the type name:\n%s", sink)
	}
	noForgedLine(t, sink)
}

// 10,000 connections that each earn a log line write logBurst lines while
// the limiter's clock stands still; when it moves on, the next line comes
// after a summary of the others.
func TestManyBadConnectionsLogFewLines(t *testing.T) {
	sink := &logSink{}
	srv := NewServer(WithLogger(log.New(sink, "", 0)))
	defer srv.Close()
	clock := newFakeClock()
	srv.logs.now = clock.now
	forged := forgedGob(t)
	bad := func() {
		c1, c2 := net.Pipe()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.ServeConn(c2)
		}()
		c1.Write(forged) // fails once the server has closed its end
		io.Copy(io.Discard, c1)
		c1.Close()
		wg.Wait()
	}
	const conns, parallel = 10_000, 16
	var wg sync.WaitGroup
	for w := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < conns; i += parallel {
				bad()
			}
		}()
	}
	wg.Wait()
	if got := logLines(sink); len(got) != logBurst {
		t.Fatalf("%d bad connections wrote %d log lines, want %d", conns, len(got), logBurst)
	}
	clock.advance(time.Second)
	bad()
	got := logLines(sink)
	if len(got) != logBurst+2 || got[logBurst] != "rpc: 9990 log lines suppressed in the last 1s" ||
		!strings.Contains(got[logBurst+1], "closing connection") {
		t.Fatalf("after a second the log ends %q; want the summary of 9990 lines, then one", got[logBurst:])
	}
	noForgedLine(t, sink)
}
