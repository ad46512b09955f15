package labtest

import (
	"strings"
	"testing"
)

// dump is a runtime.Stack(all) excerpt: a bubble (7) stalled on a mutex
// whose holder sleeps, labtest's heartbeat, and a goroutine outside.
const dump = `goroutine 12 [sync.Mutex.Lock, synctest bubble 7]:
internal/sync.runtime_SemacquireMutex(0xc000012345?, 0x0?, 0x1?)
	/usr/local/go/src/runtime/sema.go:95 +0x25
internal/sync.(*Mutex).lockSlow(0xc0000a4010)
	/usr/local/go/src/internal/sync/mutex.go:149 +0x15d
sync.(*Mutex).Lock(...)
	/usr/local/go/src/sync/mutex.go:46
lab/raft.(*Raft).RequestVote(0xc0000a4000, {0x1, 0x2})
	/lab/raft/raft.go:88 +0x45
created by lab/labrpc.(*Server).dispatch in goroutine 9
	/lab/labrpc/labrpc.go:300 +0x99

goroutine 13 [sleep (durable), synctest bubble 7]:
time.Sleep(0x5f5e100)
	/usr/local/go/src/runtime/time.go:363 +0x165
lab/raft.(*Raft).ticker(0xc0000a4000)
	/lab/raft/raft.go:120 +0x55
created by lab/raft.Make in goroutine 8
	/lab/raft/raft.go:140 +0x1aa

goroutine 14 [select (durable), synctest bubble 7]:
github.com/semrpc/semrpc/labrpc/labtest.beat(0xc000010000, 0xc000010008, 0xc000020000)
	/semrpc/labrpc/labtest/labtest.go:300 +0x90
created by github.com/semrpc/semrpc/labrpc/labtest.runVirtual.func1.1 in goroutine 10
	/semrpc/labrpc/labtest/labtest.go:220 +0x2a5

goroutine 15 [chan receive, 3 minutes]:
main.elsewhere()
	/x/main.go:5 +0x10
`

func TestParseGoroutinesReadsStateBubbleLockAndPlace(t *testing.T) {
	gs := parseGoroutines(dump)
	if len(gs) != 4 {
		t.Fatalf("parsed %d goroutines, want 4", len(gs))
	}
	tests := []struct {
		i             int
		id, bubble    int
		state, where  string
		lock          string
		mutex, sleeps bool
		ours          bool
	}{
		{0, 12, 7, "sync.Mutex.Lock", "lab/raft.(*Raft).RequestVote", "0xc0000a4010", true, false, false},
		{1, 13, 7, "sleep (durable)", "lab/raft.(*Raft).ticker", "", false, true, false},
		{2, 14, 7, "select (durable)", "github.com/semrpc/semrpc/labrpc/labtest.beat", "", false, false, true},
		{3, 15, 0, "chan receive", "main.elsewhere", "", false, false, false},
	}
	for _, tt := range tests {
		g := gs[tt.i]
		if g.id != tt.id || g.bubble != tt.bubble || g.state != tt.state || g.where().fn != tt.where || g.lock != tt.lock ||
			g.waitsOnMutex() != tt.mutex || g.sleeps() != tt.sleeps || g.ours() != tt.ours {
			t.Errorf("goroutine %d = {id %d bubble %d state %q where %q lock %q mutex %v sleeps %v ours %v}",
				tt.id, g.id, g.bubble, g.state, g.where().fn, g.lock, g.waitsOnMutex(), g.sleeps(), g.ours())
		}
	}
	if got := inBubble(gs, 7); len(got) != 2 {
		t.Errorf("inBubble(7) has %d goroutines, want 2 (labtest's heartbeat and other bubbles excluded)", len(got))
	}
}

func TestDiagnoseTellsAStallFromACrawl(t *testing.T) {
	d := diagnose(inBubble(parseGoroutines(dump), 7))
	if !d.stalled || !strings.Contains(d.text, "goroutine 12 waits for lock 0xc0000a4010 in lab/raft.(*Raft).RequestVote (/lab/raft/raft.go:88)") {
		t.Fatalf("not diagnosed as a mutex stall naming the waiter and the lock:\n%s", d.text)
	}
	running := strings.Replace(dump, "goroutine 13 [sleep (durable),", "goroutine 13 [runnable,", 1)
	if d := diagnose(inBubble(parseGoroutines(running), 7)); d.stalled || !strings.Contains(d.text, "1 × runnable in lab/raft.(*Raft).ticker") {
		t.Errorf("with a goroutine running: stalled = %v, want a crawl naming it:\n%s", d.stalled, d.text)
	}
}

// timedOut is a runtime.Stack(all) excerpt of a bubble whose test blocks
// for good (Go 1.26's names): the test body renamed by the labtest
// command, the lab's tickers, semrpc's labrpc workers, and synctest's own
// goroutines.
const timedOut = `goroutine 30 [chan receive (durable), synctest bubble 3]:
testing/synctest.testingSynctestTest(0xc0001, 0xc0002)
	/usr/local/go/src/testing/testing.go:2151 +0x1a5
created by testing/synctest.Test in goroutine 29
	/usr/local/go/src/testing/synctest/synctest.go:285 +0x65

goroutine 29 [synctest.Run (durable), synctest bubble 3]:
internal/synctest.Run(0xc0003)
	/usr/local/go/src/runtime/synctest.go:191 +0x18c
testing/synctest.Test(0xc0004, 0xc0005)
	/usr/local/go/src/testing/synctest/synctest.go:290 +0x8b
github.com/semrpc/semrpc/labrpc/labtest.runVirtual.func2()
	/semrpc/labrpc/labtest/labtest.go:250 +0x9a

goroutine 31 [chan receive (durable), synctest bubble 3]:
6.5840/raft.labtest_TestDeadlock2D(0xc0006)
	/lab/raft/raft_test.go:50 +0x6a
created by testing/synctest.testingSynctestTest in goroutine 30
	/usr/local/go/src/testing/testing.go:2148 +0x125

goroutine 40 [select (durable), synctest bubble 3]:
github.com/semrpc/semrpc/labrpc.(*Network).worker(0xc0007)
	/semrpc/labrpc/workers.go:80 +0x10

goroutine 41 [select (durable), synctest bubble 3]:
github.com/semrpc/semrpc/labrpc.(*Network).worker(0xc0007)
	/semrpc/labrpc/workers.go:80 +0x10

goroutine 42 [sleep (durable), synctest bubble 3]:
time.Sleep(0x5f5e100)
	/usr/local/go/src/runtime/time.go:363 +0x165
6.5840/raft.(*Raft).ticker(0xc0008)
	/lab/raft/raft.go:60 +0x55
`

func TestSummaryPutsTheLabsCodeFirstUnderItsOwnNames(t *testing.T) {
	got := summary(inBubble(parseGoroutines(timedOut), 3))
	want := []string{
		"1 × chan receive (durable) in 6.5840/raft.TestDeadlock2D (/lab/raft/raft_test.go:50)",
		"1 × sleep (durable) in 6.5840/raft.(*Raft).ticker (/lab/raft/raft.go:60)",
		"2 × select (durable) in github.com/semrpc/semrpc/labrpc.(*Network).worker (/semrpc/labrpc/workers.go:80)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary:\n%s\nwant (synctest's goroutines left out):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiagnoseNamesTestFunctionsAsInTheLabsFiles(t *testing.T) {
	renamed := strings.ReplaceAll(dump, "lab/raft.(*Raft).RequestVote(", "lab/raft.labtest_TestStall2C(")
	renamed = strings.ReplaceAll(renamed, "lab/raft.(*Raft).ticker(", "lab/raft.labtest_TestStall2C.func1(")
	stalled := diagnose(inBubble(parseGoroutines(renamed), 7)).text
	crawl := diagnose(inBubble(parseGoroutines(strings.Replace(renamed, "goroutine 13 [sleep (durable),", "goroutine 13 [runnable,", 1)), 7)).text
	text := stalled + "\n" + crawl
	for _, s := range []string{"goroutine 12 waits for lock 0xc0000a4010 in lab/raft.TestStall2C (", "runnable in lab/raft.TestStall2C.func1 ("} {
		if !strings.Contains(text, s) {
			t.Errorf("diagnosis lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "labtest_") {
		t.Errorf("diagnosis names labtest's renamed function:\n%s", text)
	}
}

func TestIsTesterFile(t *testing.T) {
	for pos, want := range map[string]bool{
		"/home/s/6.5840/src/raft1/server.go:101":           true, // the 2025 tester's applier
		"/home/s/6.5840/src/raft1/test.go:88":              true,
		"/home/s/6.5840/src/tester1/group.go:12":           true,
		"/home/s/6.5840/src/kvtest1/kvtest.go:40":          true,
		"/home/s/6.5840/src/kvraft1/rsm/server.go:60":      true,
		"/home/s/6.5840/src/raft/config.go:140":            true, // the older labs' tester
		"/home/s/6.5840/src/raft1/raft.go:810":             false,
		"/home/s/6.5840/src/kvraft1/server.go:60":          false, // the student's
		"/home/s/6.5840/src/shardkv1/shardgrp/server.go:9": false,
		"/home/s/6.5840/src/kvraft1/rsm/rsm.go:70":         false,
	} {
		if got := isTesterFile(pos); got != want {
			t.Errorf("isTesterFile(%q) = %v, want %v", pos, got, want)
		}
	}
}

func TestSummaryPutsTheTestersGoroutinesAfterTheLabsOwn(t *testing.T) {
	dump := `goroutine 9 [chan receive (durable), synctest bubble 3]:
6.5840/raft1.(*rfsrv).applier(0x1, 0x2)
	/lab/raft1/server.go:101 +0x6a
created by 6.5840/raft1.newRfsrv in goroutine 7
	/lab/raft1/server.go:60 +0x297

goroutine 11 [chan receive (durable), synctest bubble 3]:
6.5840/raft1.(*rfsrv).applier(0x3, 0x4)
	/lab/raft1/server.go:101 +0x6a
created by 6.5840/raft1.newRfsrv in goroutine 7
	/lab/raft1/server.go:60 +0x297

goroutine 7 [chan receive (nil chan) (durable), synctest bubble 3]:
6.5840/raft1.(*Raft).Start(0x5, {0x6, 0x7})
	/lab/raft1/raft.go:934 +0xd2
6.5840/raft1.(*Test).one(0x8, {0x6, 0x7}, 0x3, 0x0)
	/lab/raft1/test.go:246 +0x376
`
	got := summary(inBubble(parseGoroutines(dump), 3))
	want := []string{
		"1 × chan receive (nil chan) (durable) in 6.5840/raft1.(*Raft).Start (/lab/raft1/raft.go:934)",
		"2 × chan receive (durable) in 6.5840/raft1.(*rfsrv).applier (/lab/raft1/server.go:101)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
