//go:build linux

package hostile

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one attack did to its server.
type Result struct {
	Attack string
	Goal   string

	// BytesSent counts what the attacker wrote, over all its connections.
	BytesSent int64
	// Conns is how many connections the attacker held open.
	Conns int
	// Held is the live heap and goroutine stacks after GC, while the
	// attack holds its connections, less the baseline before it.
	Held int64
	// HeapInuse is the growth of the heap's spans in use after GC
	// (HeapInuse, fragmentation included), over the same interval.
	HeapInuse int64
	// Allocated is what the process allocated on the heap from the start
	// of the attack until the server went quiet (legitimate calls paused,
	// the attacker's bytes built beforehand).
	Allocated int64
	// PeakRSS is the peak resident memory during the attack, less the
	// resident memory before it.
	PeakRSS int64
	// Goroutines and FDs are the goroutines and descriptors the server
	// added, the attacker's own not counted. NoFDs says the descriptors
	// could not be counted (the process was out of them).
	Goroutines int
	FDs        int
	NoFDs      bool `json:",omitempty"`
	// ClosedByServer is how many of the attacker's connections the server
	// had closed by the end (after CloseWait, for attacks whose goal is
	// that the server closes them).
	ClosedByServer int
	// CloseAfter is how long after the attack the server had closed them
	// all; -1 if it had not by the end.
	CloseAfter time.Duration
	// CloseWait is how long the run waited for the server to close them.
	CloseWait time.Duration

	// During and After are the legitimate calls while the attack held its
	// connections, and after it ended (a fresh client included).
	During, After tally
	// LogLines is how many lines the server logged.
	LogLines int
	// Facts are what the attack observed (answers, counters, times).
	Facts []string `json:",omitempty"`
	// Missed lists the goals the server missed.
	Missed []string `json:",omitempty"`

	// Crashed says the process serving the attack died; Crash is how.
	Crashed bool   `json:",omitempty"`
	Crash   string `json:",omitempty"`
	// Err says why the attack could not be run.
	Err string `json:",omitempty"`

	Elapsed time.Duration
}

func (r *Result) fact(format string, args ...any) {
	r.Facts = append(r.Facts, fmt.Sprintf(format, args...))
}

func (r *Result) miss(format string, args ...any) {
	r.Missed = append(r.Missed, fmt.Sprintf(format, args...))
}

// scale is how big the attacks are: small enough by default that the
// suite runs fast under the race detector, full size (the figures of the
// issue) with SEMRPC_HOSTILE_FULL=1.
type scale struct {
	full bool
}

// FullEnv, set to 1, runs the attacks at full size.
const FullEnv = "SEMRPC_HOSTILE_FULL"

// closeWaitEnv, in seconds, overrides how long a run waits for the server
// to close connections that its timeouts should close.
const closeWaitEnv = "SEMRPC_HOSTILE_CLOSE_WAIT"

func currentScale() scale {
	return scale{full: os.Getenv(FullEnv) == "1"}
}

// pick returns small by default and full at full scale.
func (s scale) pick(small, full int) int {
	if s.full {
		return full
	}
	return small
}

// scenario is one run of an attack: its target, its connections and what
// it has sent.
type scenario struct {
	tg    *target
	scale scale
	res   *Result
	state any // the attack's own, from prepare to launch
	// cleanup undoes what the attack changed in the process (a lowered
	// limit); it runs once, at the latest when the run ends.
	cleanup []func()

	sent   atomic.Int64
	helper sync.WaitGroup
	// helpers counts the attacker's own goroutines (readers of replies),
	// which the goroutine count leaves out.
	helpers atomic.Int32

	mu    sync.Mutex // protects conns
	conns conns      // the attacker's connections, open until the run ends
}

// dial opens an attacker connection and keeps it until the run ends. A
// read or write on it that waits 30 s fails: a server that slow has lost.
func (s *scenario) dial() (*rawConn, error) {
	return s.dialTimeout(30 * time.Second)
}

func (s *scenario) dialTimeout(d time.Duration) (*rawConn, error) {
	c, err := dialRaw(s.tg.addr, d)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return c, nil
}

// connList returns the attacker's connections so far.
func (s *scenario) connList() conns {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(conns(nil), s.conns...)
}

// write sends p on c, counted.
func (s *scenario) write(c *rawConn, p []byte) error {
	n, err := c.write(p)
	s.sent.Add(int64(n))
	return err
}

// goHelper runs f on an attacker goroutine that the run waits for.
func (s *scenario) goHelper(f func()) {
	s.helpers.Add(1)
	s.helper.Add(1)
	go func() {
		defer s.helper.Done()
		defer s.helpers.Add(-1)
		f()
	}()
}

// openConns is how many of the attacker's connections are still open on
// its side (each holds a descriptor of the process).
func (s *scenario) openConns() int {
	n := 0
	for _, c := range s.connList() {
		if c.fd >= 0 {
			n++
		}
	}
	return n
}

// end stops the attack: its helpers are woken (their connections shut
// down) and waited for, then its connections closed.
func (s *scenario) end() {
	s.connList().shutdown()
	s.helper.Wait()
	s.connList().close()
}

func (s *scenario) runCleanup() {
	for _, f := range s.cleanup {
		f()
	}
	s.cleanup = nil
}

// Windows of legitimate calls.
const (
	duringWindow = 400 * time.Millisecond
	afterWindow  = 200 * time.Millisecond
)

// run attacks a fresh server with a and measures what it did.
func run(a *attack, sc scale) (res *Result) {
	res = &Result{Attack: a.name, Goal: a.goal, CloseAfter: -1}
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start).Round(time.Millisecond) }()

	tg, err := startTarget(a.target(sc))
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer tg.close()
	s := &scenario{tg: tg, scale: sc, res: res}
	defer s.runCleanup()
	defer s.end()
	if err := tg.startLegit(context.Background()); err != nil {
		res.Err = fmt.Sprintf("starting the legitimate clients: %v", err)
		return res
	}
	if warm := tg.legit.window(100 * time.Millisecond); warm.OK == 0 || warm.Failed > 0 {
		res.Err = fmt.Sprintf("the legitimate clients fail before any attack: %+v", warm)
		return res
	}
	if a.prepare != nil {
		if err := a.prepare(s); err != nil {
			res.Err = fmt.Sprintf("preparing: %v", err)
			return res
		}
	}

	quiesce(5 * time.Second) // the warm-up's stragglers (clients' idle watchers) end first
	base := sampleBefore()
	// What prepare sent and opened is not the attack's.
	sentBefore, connsBefore := s.sent.Load(), s.openConns()
	if err := a.launch(s); err != nil {
		res.Err = fmt.Sprintf("the attack stopped early: %v", err)
		return res
	}
	attacked := time.Now()
	quiesce(10 * time.Second)
	after := sampleAfter()
	res.BytesSent, res.Conns = s.sent.Load()-sentBefore, s.openConns()
	res.Allocated = int64(after.allocs - base.allocs)
	res.Held = (after.heap + after.stacks) - (base.heap + base.stacks)
	res.HeapInuse = after.heapInuse - base.heapInuse
	res.PeakRSS = peakRSS() - base.rss
	res.Goroutines = after.goroutines - base.goroutines - int(s.helpers.Load())
	if after.fds < 0 || base.fds < 0 {
		res.NoFDs = true
	} else {
		res.FDs = after.fds - base.fds - (s.openConns() - connsBefore)
	}

	if a.during != nil {
		a.during(s)
	}
	res.During = tg.legit.window(duringWindow)

	res.CloseWait = a.closeWait
	if env, err := strconv.Atoi(os.Getenv(closeWaitEnv)); err == nil && (a.closeWait > 0 || a.idleClose) {
		res.CloseWait = time.Duration(env) * time.Second
	}
	waitClosed(s, attacked, res.CloseWait)

	if a.finish != nil {
		a.finish(s)
	}
	s.end()
	res.After = tg.legit.window(afterWindow)
	freshStart := time.Now()
	if err := tg.freshCall(2 * time.Second); err != nil {
		res.After.add(tally{Failed: 1, FirstError: "a fresh client: " + err.Error()})
	} else {
		res.After.add(tally{OK: 1, Slowest: time.Since(freshStart)})
	}
	if ok, err := tg.serving(); !ok {
		res.fact("Serve returned: %v", err)
	}
	var lines []string
	res.LogLines, lines = tg.log.snapshot()
	for i, l := range lines {
		if i == 3 {
			res.fact("… %d more log lines", res.LogLines-i)
			break
		}
		res.fact("server log: %q", short(l))
	}
	if a.check != nil {
		a.check(s, res)
	}
	checkLegit(res)
	return res
}

// waitClosed waits, for at most wait after the attack, until the server
// has closed every attacker connection, and records when it had.
func waitClosed(s *scenario, since time.Time, wait time.Duration) {
	cs := s.connList()
	for {
		closed, _ := cs.count()
		s.res.ClosedByServer = closed
		if closed == len(cs) && closed > 0 {
			s.res.CloseAfter = time.Since(since).Round(10 * time.Millisecond)
			return
		}
		if time.Since(since) >= wait {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLegit holds every attack to the common goal: legitimate calls on
// other connections succeed during and after it.
func checkLegit(r *Result) {
	if r.During.Failed > 0 {
		r.miss("%d of %d legitimate calls failed during the attack (first: %s)", r.During.Failed, r.During.OK+r.During.Failed, r.During.FirstError)
	}
	if r.During.OK == 0 {
		r.miss("no legitimate call succeeded during the attack")
	}
	if r.After.Failed > 0 {
		r.miss("%d of %d legitimate calls failed after the attack (first: %s)", r.After.Failed, r.After.OK+r.After.Failed, r.After.FirstError)
	}
}
