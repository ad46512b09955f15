package rpc

import (
	"fmt"
	"log"
	"sync"
	"time"
)

// A server's log lines about what its peers did (a malformed stream, a
// failed TLS handshake, a method's panic) go through its logLimiter: a
// peer that opens 10,000 bad connections must not write 10,000 lines.

const (
	// logBurst is how many lines a server logs at once before it starts
	// dropping them.
	logBurst = 10
	// logEvery is how often, after a burst, it may log another line.
	logEvery = 200 * time.Millisecond
)

// logLimiter is a token bucket of log lines: logBurst lines at once, then
// one per logEvery. Lines it drops are counted, and the count is logged
// ("rpc: N log lines suppressed in the last D") just before the next line
// it lets through, so that the log still shows a sample of what happened.
// Over a time t it writes at most logBurst + 2·t/logEvery lines, summaries
// included. Its zero value is ready to use.
type logLimiter struct {
	now func() time.Time // time.Now if nil; tests set a fake clock

	mu         sync.Mutex // protects following
	started    bool
	tokens     float64
	last       time.Time // when tokens was computed
	suppressed int       // lines dropped since the last summary
	since      time.Time // when the first of them was dropped
}

// printf writes one line to l, unless the bucket is empty.
func (ll *logLimiter) printf(l *log.Logger, format string, args ...any) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	now := time.Now()
	if ll.now != nil {
		now = ll.now()
	}
	ll.refill(now)
	if ll.tokens < 1 {
		if ll.suppressed == 0 {
			ll.since = now
		}
		ll.suppressed++
		return
	}
	ll.tokens--
	if ll.suppressed > 0 {
		l.Printf("rpc: %d log lines suppressed in the last %v", ll.suppressed, now.Sub(ll.since).Round(time.Millisecond))
		ll.suppressed = 0
	}
	l.Output(3, fmt.Sprintf(format, args...)) // the caller of logPeer, for Lshortfile
}

func (ll *logLimiter) refill(now time.Time) {
	if !ll.started {
		ll.started, ll.tokens, ll.last = true, logBurst, now
		return
	}
	if d := now.Sub(ll.last); d > 0 {
		ll.tokens = min(logBurst, ll.tokens+float64(d)/float64(logEvery))
	}
	ll.last = now
}

// logPeer writes a log line about something a peer did, through the
// server's limiter. Text the peer chose must be passed through logText or
// quoteName first.
func (s *Server) logPeer(format string, args ...any) {
	s.logs.printf(s.logger, format, args...)
}
