package labtest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
)

func TestVirtualSleepTakesVirtualTime(t *testing.T) {
	Virtual(t, func(t *testing.T) {
		if currentBubble() == 0 {
			t.Fatal("f does not run in a synctest bubble")
		}
		start := time.Now()
		time.Sleep(30 * time.Second)
		if got := time.Since(start); got != 30*time.Second {
			t.Fatalf("a 30 s sleep took %v of the test's clock, want exactly 30s (virtual time)", got)
		}
	})
}

func TestVirtualToleratesGoroutinesLeftBlocked(t *testing.T) {
	Virtual(t, func(t *testing.T) {
		never := make(chan int)
		for i := 0; i < 3; i++ {
			go func() { <-never }()
		}
	})
}

func TestVirtualRerunsAMutexStallInRealTime(t *testing.T) {
	var (
		bmu     sync.Mutex // the abandoned virtual run and the rerun both write
		bubbles []int
	)
	Virtual(t, func(t *testing.T) {
		bmu.Lock()
		bubbles = append(bubbles, currentBubble())
		bmu.Unlock()
		var mu sync.Mutex
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // holds the lock across a sleep
			defer wg.Done()
			mu.Lock()
			time.Sleep(20 * time.Millisecond)
			mu.Unlock()
		}()
		go func() { // waits for it: not durably blocked, so virtual time stops
			defer wg.Done()
			time.Sleep(time.Millisecond)
			mu.Lock()
			//lint:ignore SA2001 waiting for the lock's holder is what the test stalls on
			mu.Unlock()
		}()
		wg.Wait()
	})
	bmu.Lock()
	defer bmu.Unlock()
	if len(bubbles) != 2 || bubbles[0] == 0 || bubbles[1] != 0 {
		t.Fatalf("bubbles of the runs = %v, want a virtual run, then one in real time (bubble 0)", bubbles)
	}
}

func TestVirtualRunsATestThatCallsRunInRealTime(t *testing.T) {
	var subtestRan bool
	Virtual(t, func(t *testing.T) {
		t.Run("sub", func(t *testing.T) { subtestRan = true })
	})
	if !subtestRan {
		t.Fatal("the subtest never ran")
	}
}

// The tests below run a helper test of this package in a child process and
// check how it ends.

var helpers = map[string]func(t *testing.T){
	"crawl": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			start := time.Now()
			for time.Since(start) < time.Second { // time never moves
			}
		})
	},
	"strict-leftover": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			never := make(chan int)
			go func() { <-never }()
		}, Strict())
	},
	"hang": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			<-make(chan int) // never
		})
	},
	"fail-with-network": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			labhook.Current().Register(fakeNetwork("<html>timeline</html>"))
			t.Fatal("the test fails")
		})
	},
	"stall-under-command": func(t *testing.T) {
		Virtual(t, sleepHoldingALock)
	},
	"hang-with-network": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			labhook.Current().Register(fakeNetwork("<html>timeline</html>"))
			<-make(chan int) // never
		})
	},
	"hang-real-with-network": func(t *testing.T) {
		Real(t, func(t *testing.T) {
			labhook.Current().Register(fakeNetwork("<html>timeline</html>"))
			<-make(chan int) // never: the go test -timeout ends the process
		})
	},
	"stall-strict": func(t *testing.T) {
		Virtual(t, sleepHoldingALock, Strict())
	},
	"stall-forever": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			labhook.Current().Register(fakeNetwork("<html>timeline</html>"))
			waitForeverHoldingALock(t)
		})
	},
	"strict-leftover-sleeping": func(t *testing.T) {
		Virtual(t, func(t *testing.T) {
			go func() { time.Sleep(time.Second) }() // wakes in real time: not blocked
		}, Strict())
	},
}

// sleepHoldingALock is the classic bug: a goroutine sleeps holding a lock
// that another one waits for.
func sleepHoldingALock(t *testing.T) {
	var mu sync.Mutex
	go func() {
		mu.Lock()
		time.Sleep(time.Second) // the bug: sleeping holding mu
		mu.Unlock()
	}()
	time.Sleep(time.Millisecond)
	mu.Lock()
	//lint:ignore SA2001 waiting for the lock's holder is what the test stalls on
	mu.Unlock()
}

// waitForeverHoldingALock blocks a goroutine for good while it holds a
// lock that another one waits for (Start waiting on a nil channel).
func waitForeverHoldingALock(t *testing.T) {
	var mu sync.Mutex
	go func() {
		mu.Lock()
		var never chan int
		<-never // the bug: blocked for good, holding mu
		mu.Unlock()
	}()
	time.Sleep(time.Millisecond)
	mu.Lock()
	//lint:ignore SA2001 waiting for the lock's holder is what the test stalls on
	mu.Unlock()
}

type fakeNetwork string

func (n fakeNetwork) WriteTimeline(w io.Writer) error {
	_, err := io.WriteString(w, string(n))
	return err
}

func TestHelperProcess(t *testing.T) {
	name := os.Getenv("LABTEST_HELPER")
	if name == "" {
		t.Skip("runs only as a child of the tests below")
	}
	helpers[name](t)
}

func runHelper(t *testing.T, name string, env ...string) (out string, code int) {
	t.Helper()
	timeout := "20s"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "TIMEOUT="); ok {
			timeout = v
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout="+timeout)
	cmd.Env = append(append(os.Environ(), "LABTEST_HELPER="+name), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return buf.String(), exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return buf.String(), 0
}

func TestChildProcessOutcomes(t *testing.T) {
	traceDir := t.TempDir()
	state := t.TempDir() + "/state"
	warnings := t.TempDir() + "/warnings"
	tests := []struct {
		name     string
		helper   string
		env      []string
		wantCode int
		want     []string // regexps the output must match
	}{
		{"a clock standing still while a goroutine spins fails the test, naming it and the way out", "crawl", nil, 1,
			[]string{`has not moved for 3s of real time`, `virtual clock runs slower than the real clock`, `labtest\.init\.func1\.1`, `LABTEST_REAL_TESTS=TestHelperProcess`}},
		{"Strict fails on goroutines left blocked, naming them", "strict-leftover", nil, 1,
			[]string{`left 1 goroutine\(s\) blocked`, `chan receive \(durable\) in .*labtest\.init\.func2\.1\.1`}},
		{"Strict does not fail on a goroutine left sleeping (it would wake), and lists it with -v", "strict-leftover-sleeping", nil, 0,
			[]string{`--- PASS: TestHelperProcess`, `left 1 goroutine\(s\) sleeping \(they would wake in real time\)`, `sleep \(durable\) in .*labtest\.init\.func\d+\.1\.1`}},
		{"a test blocked for good fails at the -timeout in virtual time, listing its goroutines", "hang", nil, 1,
			[]string{`still running after 20s of virtual time`, `chan receive \(durable\) in .*labtest\.init\.func3\.1`}},
		{"a test that hangs in virtual time gets its timeline", "hang-with-network",
			[]string{EnvTraceDir + "=" + t.TempDir()}, 1,
			[]string{`still running after 20s of virtual time`, `labtest: trace of network 0: .*/labtest-TestHelperProcess-net0-\d+\.html`}},
		{"a test that hangs in real time gets its timeline before the -timeout ends the process", "hang-real-with-network",
			[]string{EnvTraceDir + "=" + t.TempDir(), "TIMEOUT=4s"}, 2,
			[]string{`labtest: TestHelperProcess is still running 2s before the go test -timeout`, `labtest: trace of network 0: .*/labtest-TestHelperProcess-net0-\d+\.html`, `panic: test timed out after 4s`}},
		{"a failing test's network timeline is written to a file whose path is printed", "fail-with-network",
			[]string{EnvTraceDir + "=" + traceDir}, 1,
			[]string{`labtest: trace of network 0: ` + regexp.QuoteMeta(traceDir) + `/labtest-TestHelperProcess-net0-\d+\.html`}},
		{"under the command, a stall ends the process with the rerun status, naming the lock's holder and warning of the bug", "stall-under-command",
			[]string{EnvState + "=" + state, EnvWarnings + "=" + warnings}, RerunExitCode,
			[]string{`virtual time stopped`, `rerunning TestHelperProcess in real time`,
				`goroutine \d+ waits for lock mu 0x[0-9a-f]+ in .*labtest\.sleepHoldingALock \(.*labtest_test\.go:\d+\)`,
				`labtest: warning: TestHelperProcess sleeps or waits on a channel while holding a lock`,
				`goroutine \d+ sleeps in .*labtest\.sleepHoldingALock\.func1 \(.*labtest_test\.go:\d+\) holding mu, locked at labtest_test\.go:\d+ in .*sleepHoldingALock\.func1`}},
		{"a stall on a lock whose holder waits on a nil channel fails at once, with its timeline, instead of a rerun that would hang", "stall-forever",
			[]string{EnvState + "=" + t.TempDir() + "/state", EnvTraceDir + "=" + t.TempDir()}, 1,
			[]string{`--- FAIL: TestHelperProcess`, `virtual time stopped`,
				`goroutine \d+ waits on a channel \(chan receive \(nil chan\)\) in .*labtest\.waitForeverHoldingALock\.func1 \(.*labtest_test\.go:\d+\) holding a lock: nothing can ever wake it; a rerun in real time would hang`,
				`labtest: trace of network 0: .*/labtest-TestHelperProcess-net0-\d+\.html`}},
		{"Strict fails a test that sleeps holding a lock, without a rerun", "stall-strict",
			[]string{EnvState + "=" + t.TempDir() + "/state"}, 1,
			[]string{`--- FAIL: TestHelperProcess`, `sleeps or waits on a channel while holding a lock`,
				`sleeps in .*sleepHoldingALock\.func1 .* holding mu, locked at labtest_test\.go:\d+`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runHelper(t, tt.helper, tt.env...)
			if code != tt.wantCode {
				t.Fatalf("exit status %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			for _, re := range tt.want {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("output does not match %q:\n%s", re, out)
				}
			}
		})
	}
	t.Run("the trace file holds the timeline", func(t *testing.T) {
		files, _ := os.ReadDir(traceDir)
		if len(files) != 1 {
			t.Fatalf("%d files in the trace directory, want 1", len(files))
		}
		data, err := os.ReadFile(traceDir + "/" + files[0].Name())
		if err != nil || string(data) != "<html>timeline</html>" {
			t.Fatalf("trace file = %q, %v", data, err)
		}
	})
	t.Run("the warnings file names the test and the lock", func(t *testing.T) {
		data, _ := os.ReadFile(warnings)
		if !regexp.MustCompile(`^labtest: warning: TestHelperProcess sleeps .*\n\tgoroutine \d+ sleeps in .* holding mu, locked at labtest_test\.go:\d+`).Match(data) {
			t.Fatalf("warnings file = %q", data)
		}
	})
	t.Run("the state file names the test to rerun", func(t *testing.T) {
		data, _ := os.ReadFile(state)
		if !strings.HasPrefix(string(data), "rerun TestHelperProcess virtual time stopped") {
			t.Fatalf("state file = %q", data)
		}
	})
}

func TestVirtualReportsASkippedTestAsSkipped(t *testing.T) {
	var inner *testing.T
	t.Run("skips", func(t *testing.T) {
		inner = t
		Virtual(t, func(t *testing.T) { t.Skip("skipped inside the bubble") })
	})
	if !inner.Skipped() {
		t.Fatal("a test whose body called t.Skip in virtual time is not reported as skipped")
	}
}

func TestTimelineIntoADirectoryNotMadeYet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "traces", "today")
	path, err := writeTimeline(dir, "labtest-X-net0-*.html", fakeNetwork("<html>timeline</html>"))
	if err != nil {
		t.Fatalf("writeTimeline into %s: %v", dir, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "<html>timeline</html>" {
		t.Errorf("%s holds %q, %v", path, b, err)
	}
}
