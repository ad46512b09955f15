package labtest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
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
		Virtual(t, func(t *testing.T) {
			var mu sync.Mutex
			go func() { mu.Lock(); time.Sleep(time.Second); mu.Unlock() }()
			time.Sleep(time.Millisecond)
			mu.Lock()
			//lint:ignore SA2001 waiting for the lock's holder is what the test stalls on
			mu.Unlock()
		})
	},
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=20s")
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
		{"a test blocked for good fails at the -timeout in virtual time, listing its goroutines", "hang", nil, 1,
			[]string{`still running after 20s of virtual time`, `chan receive \(durable\) in .*labtest\.init\.func3\.1`}},
		{"a failing test's network timeline is written to a file whose path is printed", "fail-with-network",
			[]string{EnvTraceDir + "=" + traceDir}, 1,
			[]string{`labtest: trace of network 0: ` + regexp.QuoteMeta(traceDir) + `/labtest-TestHelperProcess-net0-\d+\.html`}},
		{"under the command, a stall ends the process with the rerun status", "stall-under-command",
			[]string{EnvState + "=" + state}, RerunExitCode,
			[]string{`virtual time stopped`, `rerunning TestHelperProcess in real time`}},
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
