package main

import (
	"crypto/sha256"
	"fmt"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitArgsSeparatesLabtestFlagsGoTestFlagsAndPackages(t *testing.T) {
	tests := []struct {
		args                []string
		wantGo, wantPkgs    []string
		wantLabrpc, wantErr string
		wantReal            bool
	}{
		{args: nil, wantPkgs: []string{"."}, wantLabrpc: "semrpc"},
		{args: []string{"-run", "2A", "-race", "./raft"}, wantGo: []string{"-run", "2A", "-race"}, wantPkgs: []string{"./raft"}, wantLabrpc: "semrpc"},
		{args: []string{"-labrpc=keep", "-v", "-count=3", "-timeout", "5m"}, wantGo: []string{"-v", "-count=3", "-timeout", "5m"}, wantPkgs: []string{"."}, wantLabrpc: "keep"},
		{args: []string{"-real", "-labrpc", "semrpc", "./kvraft", "./raft"}, wantPkgs: []string{"./kvraft", "./raft"}, wantLabrpc: "semrpc", wantReal: true},
		{args: []string{"-labrpc=classic"}, wantErr: `-labrpc="classic": want semrpc or keep`},
		{args: []string{"-overlay=x.json"}, wantErr: "-overlay: labtest sets this go test flag itself"},
		{args: []string{"-latency=-1ms"}, wantErr: "want a duration ≥ 0"},
		{args: []string{"-repeat", "20", "-run", "3A", "./raft1/"}, wantGo: []string{"-run", "3A"}, wantPkgs: []string{"./raft1/"}, wantLabrpc: "semrpc"},
		{args: []string{"-repeat=0", "./raft1/"}, wantErr: "-repeat=0: want a number of runs ≥ 1"},
		{args: []string{"-repeat", "x"}, wantErr: `invalid value "x" for flag -repeat`},
		{args: []string{"-repeat=2", "-procs=0", "./raft1/"}, wantErr: "-procs=0: want a number of processes ≥ 1"},
		{args: []string{"-procs=2", "./raft1/"}, wantErr: "-procs: only with -repeat"},
		{args: []string{"-repeat=2", "./raft1/", "./kvraft1/"}, wantErr: "-repeat: runs the tests of one package, not 2"},
		{args: []string{"-seed=x"}, wantErr: `invalid value "x" for flag -seed`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			opts, goArgs, pkgs, err := splitArgs(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(goArgs, tt.wantGo) || !reflect.DeepEqual(pkgs, tt.wantPkgs) || opts.labrpc != tt.wantLabrpc || opts.real != tt.wantReal {
				t.Fatalf("got go %q pkgs %q labrpc %q real %v", goArgs, pkgs, opts.labrpc, opts.real)
			}
		})
	}
}

func TestWrapTestsRenamesTestFunctionsOnTheirOwnLines(t *testing.T) {
	src := `package raft

import (
	"testing"

	"6.5840/labrpc"
)

func TestInitialElection3A(t *testing.T) {
	time.Sleep(time.Second)
}

func TestMain(m *testing.M) {}
func Testlower(t *testing.T) {}
func TestTable(t *testing.T) { t.Run("x", nil) }
func TestBench(b *testing.B) {}
func helper(t *testing.T) {}
`
	fset := token.NewFileSet()
	f, err := parseFile(fset, "x_test.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	edits, tests := wrapTests(fset, f)
	edits = append(edits, swapImports(fset, f, map[string]string{"6.5840/labrpc": semrpcLabrpc})...)
	out := string(applyEdits([]byte(src), edits))
	want := []testFunc{{name: "TestInitialElection3A", file: "x_test.go", line: 9}, {name: "TestTable", real: true, file: "x_test.go", line: 15}}
	if !reflect.DeepEqual(tests, want) {
		t.Fatalf("tests = %+v, want %+v", tests, want)
	}
	for _, s := range []string{"func labtest_TestInitialElection3A(t *testing.T) {", "func labtest_TestTable(t", `"github.com/semrpc/semrpc/labrpc"`, "func TestMain(", "func Testlower("} {
		if !strings.Contains(out, s) {
			t.Errorf("rewritten file lacks %q:\n%s", s, out)
		}
	}
	if strings.Count(out, "\n") != strings.Count(src, "\n") {
		t.Errorf("line count changed: %d → %d", strings.Count(src, "\n"), strings.Count(out, "\n"))
	}
	wrap := string(wrapperFile("raft", tests))
	for _, s := range []string{"package raft", "//line x_test.go:9\nfunc TestInitialElection3A(t *labtest_testing.T) { labtest_labtest.Virtual(t, labtest_TestInitialElection3A) }", "//line x_test.go:15\nfunc TestTable(", "labtest_labtest.Real(t, labtest_TestTable)", "labtest_fmt.Println(\"labtest: TestTable calls t.Run or t.Parallel, which synctest does not allow: it runs in real time\")"} {
		if !strings.Contains(wrap, s) {
			t.Errorf("wrapper lacks %q:\n%s", s, wrap)
		}
	}
}

// TestCommandOnTheLabShapedModule builds labtest and runs it as a student
// would, from the lab's src/ directory, in a separate process.
func TestCommandOnTheLabShapedModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a lab's tests")
	}
	bin := filepath.Join(t.TempDir(), "labtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lab, err := filepath.Abs("../../labtest/testdata/lab/src")
	if err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, lab)
	traceDir := t.TempDir()
	// Each run has a temporary directory of its own: a failing test's
	// timeline lands there, not in the machine's, and labtest must leave
	// nothing else in it.
	run := func(env []string, args ...string) (string, int) {
		tmp := t.TempDir()
		cmd := exec.Command(bin, args...)
		cmd.Dir = lab
		cmd.Env = append(append(os.Environ(), "TMPDIR="+tmp), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		left, _ := filepath.Glob(filepath.Join(tmp, "labtest-*"))
		for _, l := range left {
			if !strings.HasSuffix(l, ".html") {
				t.Errorf("labtest %v left %s behind", args, l)
			}
		}
		return string(out), code
	}
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     []string
	}{
		{"a failing test's timeline is written to a file whose path is printed", []string{"LAB_FAIL=1", "LABTEST_TRACE_DIR=" + traceDir},
			[]string{"-count=1", "-run", "TestFailsOnRequest", "./kv"}, 1,
			[]string{"--- FAIL: TestFailsOnRequest", "labtest: trace of network 0: " + traceDir + "/labtest-TestFailsOnRequest-net0-", "FAIL\t6.5840/kv"}},
		{"virtual time, a stall rerun in real time", nil, []string{"-v", "-count=1", "-run", "TestBasic|TestSleepHoldingLock|TestKillLeavesGoroutines", "./kv"}, 0,
			[]string{"--- PASS: TestBasic", "labtest: TestSleepHoldingLock: virtual time stopped", "rerunning TestSleepHoldingLock in real time",
				"--- PASS: TestSleepHoldingLock", "--- PASS: TestKillLeavesGoroutines", "goroutine(s) blocked", "chan receive (durable) in 6.5840/kv.(*KVServer).installSnapshots", "\nPASS\nok  \t6.5840/kv",
				"\nlabtest: warning: TestSleepHoldingLock sleeps or waits on a channel while holding a lock", "sleeps in 6.5840/replica.(*Replica).heartbeat (", "holding r.mu, locked at replica.go:92 in 6.5840/replica.(*Replica).heartbeat"}},
		{"without -v, the warning still shows", nil, []string{"-count=1", "-run", "TestSleepHoldingLock", "./kv"}, 0,
			[]string{"ok  \t6.5840/kv", "labtest: warning: TestSleepHoldingLock sleeps or waits on a channel while holding a lock", "holding r.mu, locked at replica.go:92"}},
		{"-strict fails a test that sleeps holding a lock", nil, []string{"-strict", "-count=1", "-run", "TestSleepHoldingLock", "./kv"}, 1,
			[]string{"--- FAIL: TestSleepHoldingLock", "holding r.mu, locked at replica.go:92", "FAIL\t6.5840/kv"}},
		{"-strict fails on leftovers; the status is go test's", nil, []string{"-strict", "-count=1", "-run", "TestKillLeavesGoroutines", "./kv"}, 1,
			[]string{"--- FAIL: TestKillLeavesGoroutines", "FAIL\t6.5840/kv"}},
		{"-h", nil, []string{"-h"}, 0, []string{"usage: labtest"}},
		{"a bad flag", nil, []string{"-labrpc=tcp"}, 2, []string{`labtest: -labrpc="tcp": want semrpc or keep`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := run(tt.env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit status %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
	t.Run("-repeat prints a warning once, with its number of runs, before the last line", func(t *testing.T) {
		out, code := run(nil, "-repeat", "2", "-run", "TestSleepHoldingLock", "./kv")
		if code != 0 {
			t.Fatalf("exit status %d; output:\n%s", code, out)
		}
		if n := strings.Count(out, "labtest: warning: TestSleepHoldingLock"); n != 1 || !strings.Contains(out, "\t(the same in 2 runs)\n") {
			t.Errorf("want the warning once, with \"(the same in 2 runs)\"; %d of them:\n%s", n, out)
		}
		if !strings.HasSuffix(out, "\nlabtest: 2 runs, 0 failed\n") {
			t.Errorf("last line is not \"labtest: 2 runs, 0 failed\":\n%s", out)
		}
	})
	t.Run("the timeline file is an HTML page with the test's calls", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(traceDir, "labtest-TestFailsOnRequest-net0-*.html"))
		if len(files) != 1 {
			t.Fatalf("timeline files: %v, want one", files)
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"<!DOCTYPE html>", "<rect"} { // a bar per call
			if !strings.Contains(string(data), s) {
				t.Errorf("timeline lacks %q", s)
			}
		}
	})
	if after := treeHash(t, lab); after != before {
		t.Fatal("labtest changed files of the lab on disk")
	}
}

// treeHash hashes every file's path and contents under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		fmt.Fprintf(h, "%s %d\n", path, len(data))
		h.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestCompileErrorsNameTheLabsFilesAsGoTestDoes pins that a lab that does
// not compile gets go test's own error lines from labtest: the lab's file,
// line and column, not the rewritten copy in labtest's work directory, even
// after a swapped import, after a renamed Test function on the same line,
// and in a directory whose name has a space.
func TestCompileErrorsNameTheLabsFilesAsGoTestDoes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a lab")
	}
	lab := filepath.Join(t.TempDir(), "my lab", "src")
	files := map[string]string{
		"go.mod":           "module 6.5840\n\ngo 1.15\n",
		"labrpc/labrpc.go": "package labrpc\n\ntype ClientEnd struct{}\n\nfunc MakeNetwork() {}\n",
		"raft/raft.go":     "package raft\n\nimport \"6.5840/labrpc\"\n\nfunc Make(peers []*labrpc.ClientEnd) { labrpc.MakeNetwork(); undefinedInRaft() }\n",
		"raft/raft_test.go": "package raft\n\nimport \"testing\"\n\n" +
			"func TestBroken2A(t *testing.T) { var x int = \"s\"; _ = x }\n",
	}
	for name, src := range files {
		path := filepath.Join(lab, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(lab)
	goTest := exec.Command("go", "test", "./raft")
	want, err := goTest.CombinedOutput()
	if err == nil {
		t.Fatalf("go test passed on a lab that does not compile:\n%s", want)
	}
	var out strings.Builder
	if code, _ := run([]string{"./raft"}, &out, &out); code != goTest.ProcessState.ExitCode() {
		t.Errorf("exit status %d, go test's %d", code, goTest.ProcessState.ExitCode())
	}
	for _, line := range []string{"raft/raft.go:5:62: undefined: undefinedInRaft", "raft/raft_test.go:5:47: cannot use \"s\""} {
		if !strings.Contains(string(want), line) {
			t.Fatalf("go test's output lacks %q (the test's premise):\n%s", line, want)
		}
		if !strings.Contains(out.String(), line) {
			t.Errorf("labtest's output lacks go test's %q:\n%s", line, out.String())
		}
	}
	if strings.Contains(out.String(), "labtest-") {
		t.Errorf("labtest's output names its work directory:\n%s", out.String())
	}
}
