package labtest

import (
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// goroutine is one goroutine of a runtime.Stack dump, reduced to what a
// report needs.
type goroutine struct {
	id     int
	state  string // "sleep (durable)", "sync.Mutex.Lock", "running", ...
	bubble int    // synctest bubble id, 0 outside bubbles
	frames []frame
	lock   string // for a goroutine waiting on a mutex: the mutex's address
}

type frame struct {
	fn   string // package-qualified function name
	args string // the argument words as printed
	pos  string // file:line
}

var headerRE = regexp.MustCompile(`^goroutine (\d+) \[([^\]]*)\]:$`)
var bubbleRE = regexp.MustCompile(`, synctest bubble (\d+)`)

// parseGoroutines parses the output of runtime.Stack(buf, true).
func parseGoroutines(dump string) []goroutine {
	var gs []goroutine
	for _, block := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		m := headerRE.FindStringSubmatch(lines[0])
		if m == nil {
			continue
		}
		g := goroutine{}
		g.id, _ = strconv.Atoi(m[1])
		status := m[2]
		if b := bubbleRE.FindStringSubmatch(status); b != nil {
			g.bubble, _ = strconv.Atoi(b[1])
			status = strings.Replace(status, b[0], "", 1)
		}
		if i := strings.Index(status, ", "); i >= 0 { // "N minutes", "locked to thread"
			status = status[:i]
		}
		g.state = status
		for i := 1; i+1 < len(lines); i += 2 {
			call := lines[i]
			if strings.HasPrefix(call, "created by ") {
				break
			}
			f := frame{fn: call}
			if p := strings.LastIndex(call, "("); p > 0 && strings.HasSuffix(call, ")") {
				f.fn, f.args = call[:p], call[p+1:len(call)-1]
			}
			pos := strings.TrimSpace(lines[i+1])
			if sp := strings.LastIndex(pos, " +0x"); sp > 0 {
				pos = pos[:sp]
			}
			f.pos = pos
			g.frames = append(g.frames, f)
			if g.lock == "" && isLockFrame(f.fn) {
				if a := strings.SplitN(f.args, ",", 2)[0]; strings.HasPrefix(a, "0x") {
					g.lock = a
				}
			}
		}
		gs = append(gs, g)
	}
	return gs
}

func isLockFrame(fn string) bool {
	switch fn {
	case "sync.(*Mutex).Lock", "sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).Lock",
		"internal/sync.(*Mutex).lockSlow", "sync.(*RWMutex).Lock", "sync.(*RWMutex).RLock":
		return true
	}
	return false
}

// where is the goroutine's first frame outside the runtime, the standard
// library's sync and time packages and testing: the code that is waiting.
// A Test function (or a closure in it) is named as in the lab's file,
// without the prefix the labtest command renames it with.
func (g goroutine) where() frame {
	for _, f := range g.frames {
		if isPlumbing(f.fn) {
			continue
		}
		f.fn = strings.Replace(f.fn, ".labtest_Test", ".Test", 1)
		return f
	}
	if len(g.frames) > 0 {
		return g.frames[0]
	}
	return frame{fn: "?"}
}

func isPlumbing(fn string) bool {
	for _, p := range []string{"runtime.", "sync.", "internal/", "time.", "testing."} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// ours reports goroutines that are labtest's or testing's own plumbing.
// They are no part of what a report on the test explains.
func (g goroutine) ours() bool {
	for _, f := range g.frames {
		switch {
		case strings.Contains(f.fn, "labrpc/labtest.beat"),
			f.fn == "testing.testingSynctestTest", f.fn == "testing/synctest.testingSynctestTest", // the bubble's root
			f.fn == "testing/synctest.Test": // labtest's goroutine that runs the bubble
			return true
		}
	}
	return false
}

func (g goroutine) waitsOnMutex() bool {
	return strings.HasPrefix(g.state, "sync.Mutex.Lock") || strings.HasPrefix(g.state, "sync.RWMutex.")
}

func (g goroutine) runs() bool {
	return g.state == "running" || g.state == "runnable" || strings.HasPrefix(g.state, "syscall")
}

func (g goroutine) sleeps() bool { return strings.HasPrefix(g.state, "sleep") }

// inBubble returns the goroutines of bubble id other than labtest's own.
func inBubble(gs []goroutine, id int) []goroutine {
	var out []goroutine
	for _, g := range gs {
		if g.bubble == id && id != 0 && !g.ours() {
			out = append(out, g)
		}
	}
	return out
}

// allGoroutines returns a parsed dump of every goroutine.
func allGoroutines() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return parseGoroutines(string(buf[:n]))
		}
		if len(buf) >= 64<<20 {
			return parseGoroutines(string(buf[:n]))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// currentBubble returns the synctest bubble of the calling goroutine, 0 if
// none.
func currentBubble() int {
	buf := make([]byte, 256)
	n := runtime.Stack(buf, false)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if m := bubbleRE.FindStringSubmatch(line); m != nil {
		id, _ := strconv.Atoi(m[1])
		return id
	}
	return 0
}

// summary groups goroutines by state and place: "3 × chan receive
// (durable) in lab.(*Raft).ticker (raft.go:88)". The lab's own code comes
// first, then the course's tester's (isTesterFile), semrpc's (its labrpc's
// workers and timers) last, each most numerous first; a Test function is named as in the lab's file, without
// the prefix the labtest command renames it with.
func summary(gs []goroutine) []string {
	count := map[string]int{}
	rank := map[string]int{}
	for _, g := range gs {
		w := g.where()
		k := fmt.Sprintf("%s in %s (%s)", g.state, w.fn, w.pos)
		count[k]++
		switch {
		case strings.HasPrefix(w.fn, "github.com/semrpc/semrpc/"):
			rank[k] = 2
		case isTesterFile(w.pos):
			rank[k] = 1
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if rank[keys[i]] != rank[keys[j]] {
			return rank[keys[i]] < rank[keys[j]]
		}
		if count[keys[i]] != count[keys[j]] {
			return count[keys[i]] > count[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%d × %s", count[k], k)
	}
	return out
}

// diagnosis is what diagnose found.
type diagnosis struct {
	stalled bool     // goroutines wait on a mutex and none runs: the clock stopped for good
	text    string   // the explanation, for a log line
	bugs    []string // goroutines proven to sleep or wait on a channel while holding a lock
	// forever names a lock holder that can never wake (it waits on a nil
	// channel or in an empty select): in real time the test would hang
	// too, so a rerun cannot help.
	forever string
}

// waitsForever reports a goroutine that no other goroutine can ever wake:
// it receives from or sends on a nil channel, or selects with no cases.
func (g goroutine) waitsForever() bool {
	state := strings.TrimSuffix(g.state, " (durable)")
	return state == "chan receive (nil chan)" || state == "chan send (nil chan)" || state == "select (no cases)"
}

// blocked describes how a goroutine waits in a way that must not hold a
// lock ("sleeps", "waits on a channel (chan receive)"), or "" for any
// other state.
func (g goroutine) blocked() string {
	state := strings.TrimSuffix(g.state, " (durable)")
	switch {
	case g.sleeps():
		return "sleeps"
	case strings.HasPrefix(state, "chan receive"), strings.HasPrefix(state, "chan send"), strings.HasPrefix(state, "select"):
		return "waits on a channel (" + state + ")"
	}
	return ""
}

// lockBugs returns, for every goroutine of gs that sleeps or waits on a
// channel, the locks it is proven to hold (see lockReader).
func lockBugs(r *lockReader, gs []goroutine) (lines []string, holders map[int][]heldLock) {
	holders = map[int][]heldLock{}
	for _, g := range gs {
		how := g.blocked()
		if how == "" {
			continue
		}
		held := r.held(g)
		if len(held) == 0 {
			continue
		}
		holders[g.id] = held
		w := g.where()
		for _, h := range held {
			lines = append(lines, fmt.Sprintf("goroutine %d %s in %s (%s) %s", g.id, how, w.fn, w.pos, h))
		}
	}
	return lines, holders
}

// diagnose explains why virtual time stopped or crawls, from the bubble's
// goroutines, and names the goroutines proven to sleep or wait on a
// channel while holding a lock.
func diagnose(gs []goroutine) diagnosis {
	var waiting, running []goroutine
	for _, g := range gs {
		switch {
		case g.waitsOnMutex():
			waiting = append(waiting, g)
		case g.runs():
			running = append(running, g)
		}
	}
	r := newLockReader()
	bugs, holders := lockBugs(r, gs)
	var b strings.Builder
	if len(waiting) > 0 && len(running) == 0 {
		b.WriteString("virtual time stopped: goroutines wait on a sync.Mutex, which synctest does not count as durably blocked, so the clock cannot advance to wake the goroutine holding it")
		type want struct {
			id   int
			lock heldLock
		}
		var wanted []want
		for _, g := range waiting {
			w := g.where()
			lock := g.lock
			if lock == "" {
				lock = "(address not in the trace)"
			}
			if w, ok := r.wanted(g); ok {
				lock = w.expr + " " + lock
				wanted = append(wanted, want{g.id, w})
			}
			fmt.Fprintf(&b, "\n\tgoroutine %d waits for lock %s in %s (%s)", g.id, lock, w.fn, w.pos)
		}
		var forever string
		for _, g := range gs {
			if len(holders[g.id]) > 0 && g.waitsForever() && forever == "" {
				w := g.where()
				forever = fmt.Sprintf("goroutine %d %s in %s (%s) holding a lock: nothing can ever wake it", g.id, g.blocked(), w.fn, w.pos)
			}
			for _, h := range holders[g.id] {
				w := g.where()
				fmt.Fprintf(&b, "\n\tgoroutine %d %s in %s (%s) %s", g.id, g.blocked(), w.fn, w.pos, h)
				for _, w := range wanted {
					if h.sameInstance(w.lock) {
						fmt.Fprintf(&b, ": the lock goroutine %d waits for", w.id)
						break
					}
				}
			}
		}
		if len(holders) == 0 {
			b.WriteString("\n\tno sleeping or waiting goroutine can be shown to hold a lock (labtest reads each waiting function's source for a Lock not yet undone; a lock taken in a helper is not seen)")
		}
		return diagnosis{stalled: true, text: b.String(), bugs: bugs, forever: forever}
	}
	b.WriteString("the virtual clock runs slower than the real clock (the test is CPU-bound or spins without blocking); running:")
	lines := summary(running)
	const most = 8
	if len(lines) > most {
		lines = append(lines[:most], fmt.Sprintf("and %d more places", len(lines)-most))
	}
	for _, l := range lines {
		b.WriteString("\n\t" + l)
	}
	if len(lines) == 0 {
		b.WriteString(" none at the moment of the sample")
	}
	return diagnosis{text: b.String(), bugs: bugs}
}

// isTesterFile reports whether pos ("/…/src/raft1/server.go:101") is in a
// file of the course's testers, which students do not change: the 2025
// labs' tester1 and kvtest1 packages, every lab's test.go, raft1/server.go
// and kvraft1/rsm/server.go, and the older labs' config.go. The 2025
// tester's applier, for one, waits on applyCh for good after the test.
func isTesterFile(pos string) bool {
	file := pos
	if i := strings.LastIndex(pos, ":"); i > 0 {
		file = pos[:i]
	}
	file = filepath.ToSlash(file)
	base, dir := filepath.Base(file), filepath.Base(filepath.Dir(file))
	switch {
	case dir == "tester1", dir == "kvtest1":
		return true
	case base == "test.go", base == "config.go":
		return true
	case base == "server.go" && (strings.HasSuffix(file, "/raft1/server.go") || strings.HasSuffix(file, "/kvraft1/rsm/server.go")):
		return true
	}
	return false
}
