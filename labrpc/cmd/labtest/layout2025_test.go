package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// buildLabtest builds the command into a temporary directory.
func buildLabtest(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "labtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runIn runs bin in dir with env added and a temporary directory of its
// own, and returns its combined output, exit status and temporary
// directory.
func runIn(t *testing.T, bin, dir string, env []string, args ...string) (out string, code int, tmp string) {
	t.Helper()
	tmp = t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TMPDIR="+tmp), env...)
	b, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(b), code, tmp
}

// TestCommandOnThe2025Layout runs labtest as a student of the 2025 labs
// would, from src/, on a lab in the shape of the course's: go 1.22,
// porcupine v1.0.3, a tester1 package that owns the network, servers that
// register a type without RPC methods, non-constant Fatalf formats.
func TestCommandOnThe2025Layout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a lab's tests")
	}
	bin := buildLabtest(t)
	lab, err := filepath.Abs("../../labtest/testdata/lab2025/src")
	if err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, lab)

	t.Run("no flags: vet as go test's, the lab's porcupine, no line of noise", func(t *testing.T) {
		out, code, _ := runIn(t, bin, lab, nil, "-count=1", "./raft1/")
		if code != 0 {
			t.Fatalf("exit status %d; output:\n%s", code, out)
		}
		if !strings.Contains(out, "ok  \t6.5840/raft1") {
			t.Errorf("output lacks ok for 6.5840/raft1:\n%s", out)
		}
		for _, s := range []string{"non-constant format string", "AddService", "go.mod", "porcupine"} {
			if strings.Contains(out, s) {
				t.Errorf("output has %q:\n%s", s, out)
			}
		}
	})
	t.Run("-v lists each test, the porcupine check among them, and the skipped one as skipped", func(t *testing.T) {
		out, code, _ := runIn(t, bin, lab, nil, "-count=1", "-v", "./raft1/")
		if code != 0 {
			t.Fatalf("exit status %d; output:\n%s", code, out)
		}
		for _, s := range []string{"--- PASS: TestInitialElection3A", "--- PASS: TestBasicAgree3B", "--- PASS: TestPorcupineIsTheLabsVersion", "--- SKIP: TestFailsOnRequest"} {
			if !strings.Contains(out, s) {
				t.Errorf("output lacks %q:\n%s", s, out)
			}
		}
	})
	t.Run("-strict passes a correct lab: the tester's applier and sleeping tickers left behind are no failure", func(t *testing.T) {
		out, code, _ := runIn(t, bin, lab, nil, "-count=1", "-strict", "-v", "-run", "3A", "./raft1/")
		if code != 0 {
			t.Fatalf("exit status %d; output:\n%s", code, out)
		}
		for _, re := range []string{`left \d+ of the tester's goroutine\(s\) blocked .*\n\s+\d+ × chan receive \(durable\) in 6\.5840/raft1\.\(\*rfsrv\)\.applier`, `left \d+ goroutine\(s\) sleeping`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("output does not match %s:\n%s", re, out)
			}
		}
	})
	t.Run("-h shows the 2025 paths", func(t *testing.T) {
		out, code, _ := runIn(t, bin, lab, nil, "-h")
		if code != 0 {
			t.Fatalf("exit status %d", code)
		}
		for _, s := range []string{"./raft1/", "./kvraft1/rsm/", "./shardkv1/", "-repeat", "-seed"} {
			if !strings.Contains(out, s) {
				t.Errorf("-h lacks %q:\n%s", s, out)
			}
		}
	})
	t.Run("-repeat: a table per test and the closing line", func(t *testing.T) {
		out, code, tmp := runIn(t, bin, lab, nil, "-repeat", "3", "-procs", "2", "-run", "3A", "./raft1/")
		if code != 0 {
			t.Fatalf("exit status %d; output:\n%s", code, out)
		}
		for _, re := range []string{`(?m)^TestInitialElection3A\s+3\s+0\s`, `(?m)^TestReElection3A\s+3\s+0\s`, `(?m)^labtest: 3/3 runs, 0 failed`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("output does not match %s:\n%s", re, out)
			}
		}
		if !strings.HasSuffix(out, "\nlabtest: 3 runs, 0 failed\n") {
			t.Errorf("last line is not \"labtest: 3 runs, 0 failed\":\n%s", out)
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, "labtest-*")); len(left) > 0 {
			t.Errorf("passing runs left %v behind", left)
		}
	})
	var replayedFates string
	t.Run("-repeat with failures: each kept with its seed and timeline; -seed replays the network", func(t *testing.T) {
		out, code, _ := runIn(t, bin, lab, []string{"LAB_FAIL=1"}, "-repeat", "2", "-seed", "7", "-run", "TestFailsOnRequest", "./raft1/")
		if code != 1 {
			t.Fatalf("exit status %d, want 1; output:\n%s", code, out)
		}
		if !strings.HasSuffix(out, "\nlabtest: 2 runs, 2 failed\n") {
			t.Errorf("last line is not \"labtest: 2 runs, 2 failed\":\n%s", out)
		}
		m := regexp.MustCompile(`labtest: the output of the failing runs, with their timelines: (\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no directory of failing runs printed:\n%s", out)
		}
		for _, s := range []string{"run 1 failed (seed 7): TestFailsOnRequest", "run 2 failed (seed 7): TestFailsOnRequest", "labtest -seed 7 -run '^(TestFailsOnRequest)$' ./raft1/"} {
			if !strings.Contains(out, s) {
				t.Errorf("output lacks %q:\n%s", s, out)
			}
		}
		runs, _ := filepath.Glob(filepath.Join(m[1], "run-*-seed-7"))
		if len(runs) != 2 {
			t.Fatalf("run directories %v, want 2", runs)
		}
		fates := map[string]bool{}
		for _, r := range runs {
			data, err := os.ReadFile(filepath.Join(r, "output.txt"))
			if err != nil {
				t.Fatal(err)
			}
			f := regexp.MustCompile(`LABRPC_SEED=7 fates=([01]+)`).FindStringSubmatch(string(data))
			if f == nil {
				t.Fatalf("%s/output.txt lacks the test's fates under seed 7:\n%s", r, data)
			}
			fates[f[1]] = true
			replayedFates = f[1]
			if strings.Contains(string(data), "AddService") {
				t.Errorf("%s/output.txt has -v's noise though labtest ran without -v:\n%s", r, data)
			}
			if html, _ := filepath.Glob(filepath.Join(r, "labtest-TestFailsOnRequest-net0-*.html")); len(html) != 1 {
				t.Errorf("%s holds timelines %v, want one", r, html)
			}
		}
		if len(fates) != 1 {
			t.Errorf("the same seed gave different fates: %v", fates)
		}
	})
	t.Run("-seed without -repeat replays the same fates", func(t *testing.T) {
		if replayedFates == "" {
			t.Skip("the previous subtest found no fates")
		}
		out, code, _ := runIn(t, bin, lab, []string{"LAB_FAIL=1"}, "-count=1", "-seed", "7", "-run", "TestFailsOnRequest", "./raft1/")
		if code != 1 {
			t.Fatalf("exit status %d, want 1; output:\n%s", code, out)
		}
		if !strings.Contains(out, "LABRPC_SEED=7 fates="+replayedFates) {
			t.Errorf("fates under -seed 7 differ from the repeated runs' %s:\n%s", replayedFates, out)
		}
	})
	t.Run("-repeat gives each run a seed of its own", func(t *testing.T) {
		out, code, _ := runIn(t, bin, lab, []string{"LAB_FAIL=1"}, "-repeat", "2", "-run", "TestFailsOnRequest", "./raft1/")
		if code != 1 {
			t.Fatalf("exit status %d, want 1; output:\n%s", code, out)
		}
		seeds := regexp.MustCompile(`run \d failed \(seed (\d+)\)`).FindAllStringSubmatch(out, -1)
		if len(seeds) != 2 || seeds[0][1] == seeds[1][1] {
			t.Errorf("seeds of the two runs: %v, want two different ones:\n%s", seeds, out)
		}
	})
	if after := treeHash(t, lab); after != before {
		t.Fatal("labtest changed files of the lab on disk")
	}
}

// TestVetReportsWhatTheLabsGoTestReports pins that labtest's vet finds, in
// a lab whose go.mod says go 1.22, what the lab's own go test finds: the
// printf mistakes of every version, and not the non-constant format
// strings that vet flags only from go 1.24 on (as in the 2025 course files).
func TestVetReportsWhatTheLabsGoTestReports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a lab")
	}
	lab := filepath.Join(t.TempDir(), "src")
	files := map[string]string{
		"go.mod": "module 6.5840\n\ngo 1.22\n",
		"p/p.go": "package p\n\nimport \"fmt\"\n\nfunc Say(msg string) { fmt.Printf(msg) }\n",
		"p/p_test.go": "package p\n\nimport (\n\t\"fmt\"\n\t\"testing\"\n)\n\n" +
			"func TestSay(t *testing.T) {\n\tmsg := fmt.Sprint(\"x\")\n\tt.Logf(msg)\n\tfmt.Printf(\"%d\\n\", \"not a number\")\n}\n",
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
	vetLines := func(out string) []string {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, ".go:") {
				lines = append(lines, strings.TrimPrefix(l, "./"))
			}
		}
		sort.Strings(lines)
		return lines
	}
	goTest := exec.Command("go", "test", "-count=1", "./p")
	goTest.Dir = lab
	want, _ := goTest.CombinedOutput()
	wantLines := vetLines(string(want))
	if len(wantLines) != 1 || !strings.Contains(wantLines[0], "p/p_test.go:11:14: fmt.Printf format %d has arg") {
		t.Fatalf("go test's vet lines %q, want only the %%d one (the test's premise):\n%s", wantLines, want)
	}
	out, code, _ := runIn(t, buildLabtest(t), lab, nil, "-count=1", "./p")
	if code != goTest.ProcessState.ExitCode() {
		t.Errorf("exit status %d, go test's %d", code, goTest.ProcessState.ExitCode())
	}
	if got := vetLines(out); strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("labtest's vet lines %q, go test's %q:\n%s", got, wantLines, out)
	}
}
