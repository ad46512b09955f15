package labtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lockSource is testdata/locks/raft.go: its absolute path and the line of
// each "at:" marker.
func lockSource(t *testing.T) (path string, at map[string]int) {
	t.Helper()
	path, err := filepath.Abs("testdata/locks/raft.go")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at = map[string]int{}
	for i, line := range strings.Split(string(src), "\n") {
		if _, mark, ok := strings.Cut(line, "// at:"); ok {
			at[strings.TrimSpace(mark)] = i + 1
		}
	}
	return path, at
}

func TestLockReaderProvesOnlyLocksHeldOnEveryPath(t *testing.T) {
	path, at := lockSource(t)
	tests := []struct {
		mark, fn string
		want     string // the held locks, "expr@marker-of-lock-line" is too brittle: expr list
	}{
		{"sleepsHolding", "lab/raft.(*Raft).sleepsHolding", "rf.mu"},
		{"deferred", "lab/raft.(*Raft).deferred", "rf.mu"},
		{"released", "lab/raft.(*Raft).released", ""},
		{"tickerTop", "lab/raft.(*Raft).ticker", ""},
		{"tickerSend", "lab/raft.(*Raft).ticker", "rf.mu"},
		{"conditional", "lab/raft.(*Raft).conditional", ""},
		{"maybeReleased", "lab/raft.(*Raft).maybeReleased", ""},
		{"earlyReturn", "lab/raft.(*Raft).earlyReturn", "rf.mu"},
		{"loopReleases", "lab/raft.(*Raft).loopReleases", ""},
		{"readerSelect", "lab/raft.(*Raft).reader", "rf.state (read)"},
		{"callsHelper", "lab/raft.(*Raft).callsHelper", "rf.mu"},
		{"helper", "lab/raft.(*Raft).helper", ""},
		{"lockedByHelper", "lab/raft.(*Raft).lockedByHelper", ""}, // a helper's Lock is not followed
		{"closure", "lab/raft.Make.func1", "rf.mu"},
		{"make", "lab/raft.Make", ""},
		{"goLocked", "lab/raft.MakeLocked", "rf.mu"},
	}
	r := newLockReader()
	for _, tt := range tests {
		t.Run(tt.mark, func(t *testing.T) {
			line, ok := at[tt.mark]
			if !ok {
				t.Fatalf("no marker %q in %s", tt.mark, path)
			}
			var got []string
			for _, h := range r.heldInFrame(frame{fn: tt.fn, args: "0xc0000a4000", pos: fmt.Sprintf("%s:%d", path, line)}) {
				s := h.expr
				if h.read {
					s += " (read)"
				}
				got = append(got, s)
			}
			if strings.Join(got, ", ") != tt.want {
				t.Errorf("held at %s = %q, want %q", tt.mark, strings.Join(got, ", "), tt.want)
			}
		})
	}
}

// stallDump is a bubble stalled on rf.mu: goroutine 12 waits for it in
// RequestVote, goroutine 13 sleeps holding it (the same *Raft), goroutine
// 14 sleeps holding another Raft's, goroutine 15 (the tester's
// checkOneLeader) sleeps holding nothing, goroutine 16 waits on a channel
// holding rf.mu, locked in its caller.
func stallDump(path string, at map[string]int) string {
	return fmt.Sprintf(`goroutine 12 [sync.Mutex.Lock, synctest bubble 7]:
internal/sync.runtime_SemacquireMutex(0xc000012345?, 0x0?, 0x1?)
	/usr/local/go/src/runtime/sema.go:95 +0x25
internal/sync.(*Mutex).lockSlow(0xc0000a4010)
	/usr/local/go/src/internal/sync/mutex.go:149 +0x15d
sync.(*Mutex).Lock(...)
	/usr/local/go/src/sync/mutex.go:46
lab/raft.(*Raft).RequestVote(0xc0000a4000, 0x1, 0xc0000b0000)
	%[1]s:%[2]d +0x45

goroutine 13 [sleep (durable), synctest bubble 7]:
time.Sleep(0x5f5e100)
	/usr/local/go/src/runtime/time.go:363 +0x165
lab/raft.(*Raft).sleepsHolding(0xc0000a4000)
	%[1]s:%[3]d +0x55

goroutine 14 [sleep (durable), synctest bubble 7]:
time.Sleep(0x5f5e100)
	/usr/local/go/src/runtime/time.go:363 +0x165
lab/raft.(*Raft).sleepsHolding(0xc0000c8000)
	%[1]s:%[3]d +0x55

goroutine 15 [sleep (durable), synctest bubble 7]:
time.Sleep(0x5f5e100)
	/usr/local/go/src/runtime/time.go:363 +0x165
lab/tester.(*Config).checkOneLeader(0xc0000d0000)
	/lab/tester/config.go:300 +0x55

goroutine 16 [chan receive (durable), synctest bubble 7]:
lab/raft.(*Raft).helper(0xc0000a4000)
	%[1]s:%[4]d +0x55
lab/raft.(*Raft).callsHelper(0xc0000a4000)
	%[1]s:%[5]d +0x55
`, path, at["requestVote"], at["sleepsHolding"], at["helper"], at["callsHelper"])
}

// A goroutine started while its creator held a lock does not hold it: the
// go statement's wrapper frame shows the creator's line.
func TestLockReaderSkipsTheGoStatementsWrapper(t *testing.T) {
	path, at := lockSource(t)
	g := goroutine{id: 20, state: "sleep", frames: []frame{
		{fn: "time.Sleep", pos: "/usr/local/go/src/runtime/time.go:363"},
		{fn: "lab/raft.(*Raft).ticker", args: "0xc0000a4000", pos: fmt.Sprintf("%s:%d", path, at["tickerTop"])},
		{fn: "lab/raft.MakeLocked.gowrap1", pos: fmt.Sprintf("%s:%d", path, at["goLocked"])},
	}}
	if held := newLockReader().held(g); len(held) != 0 {
		t.Errorf("held = %v, want nothing", held)
	}
}

func TestDiagnoseNamesOnlyGoroutinesShownToHoldALock(t *testing.T) {
	path, at := lockSource(t)
	d := diagnose(inBubble(parseGoroutines(stallDump(path, at)), 7))
	if !d.stalled {
		t.Fatalf("not diagnosed as a mutex stall:\n%s", d.text)
	}
	lockLine := at["sleepsHolding"] - 2 // rf.mu.Lock() two lines above the sleep
	for _, s := range []string{
		fmt.Sprintf("goroutine 12 waits for lock rf.mu 0xc0000a4010 in lab/raft.(*Raft).RequestVote (%s:%d)", path, at["requestVote"]),
		fmt.Sprintf("goroutine 13 sleeps in lab/raft.(*Raft).sleepsHolding (%s:%d) holding rf.mu, locked at raft.go:%d in lab/raft.(*Raft).sleepsHolding: the lock goroutine 12 waits for", path, at["sleepsHolding"], lockLine),
		fmt.Sprintf("goroutine 14 sleeps in lab/raft.(*Raft).sleepsHolding (%s:%d) holding rf.mu, locked at raft.go:%d in lab/raft.(*Raft).sleepsHolding\n", path, at["sleepsHolding"], lockLine),
		fmt.Sprintf("goroutine 16 waits on a channel (chan receive) in lab/raft.(*Raft).helper (%s:%d) holding rf.mu, locked at raft.go:%d in lab/raft.(*Raft).callsHelper: the lock goroutine 12 waits for", path, at["helper"], at["callsHelper"]-1),
	} {
		if !strings.Contains(d.text+"\n", s) {
			t.Errorf("diagnosis lacks %q:\n%s", s, d.text)
		}
	}
	if strings.Contains(d.text, "goroutine 15") || strings.Contains(d.text, "checkOneLeader") {
		t.Errorf("diagnosis names the tester's goroutine, which holds no lock:\n%s", d.text)
	}
	if len(d.bugs) != 3 {
		t.Errorf("bugs = %q, want goroutines 13, 14 and 16", d.bugs)
	}
}

func TestDiagnoseSaysSoWhenNoHolderCanBeShown(t *testing.T) {
	d := diagnose(inBubble(parseGoroutines(dump), 7)) // sources not on disk
	if !d.stalled || len(d.bugs) != 0 || strings.Contains(d.text, "goroutine 13") ||
		!strings.Contains(d.text, "no sleeping or waiting goroutine can be shown to hold a lock") {
		t.Errorf("stalled %v, bugs %q; want a stall with no holder named:\n%s", d.stalled, d.bugs, d.text)
	}
}
