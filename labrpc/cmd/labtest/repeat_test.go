package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitTestFlagsSendsTestFlagsToTheBinaryAndTheRestToTheBuild(t *testing.T) {
	build, test, timeout := splitTestFlags([]string{"-run", "3A", "-race", "-v", "-timeout=2m", "-tags", "x", "-failfast", "-count=2"})
	if want := []string{"-race", "-tags", "x"}; !reflect.DeepEqual(build, want) {
		t.Errorf("build flags %q, want %q", build, want)
	}
	if want := []string{"-test.run=3A", "-test.failfast", "-test.count=2"}; !reflect.DeepEqual(test, want) {
		t.Errorf("test flags %q, want %q", test, want)
	}
	if timeout != "2m" {
		t.Errorf("timeout %q, want 2m", timeout)
	}
	if _, _, timeout := splitTestFlags(nil); timeout != "10m0s" {
		t.Errorf("default timeout %q, want go test's 10m0s", timeout)
	}
}

func TestParseOutcomesReadsVerdictsAndTimedOutTests(t *testing.T) {
	out := `=== RUN   TestA
--- PASS: TestA (1.50s)
=== RUN   TestB
    --- FAIL: TestB/sub (0.10s)
--- FAIL: TestB (0.20s)
--- SKIP: TestC (0.00s)
=== RUN   TestD
panic: test timed out after 10m0s
	running tests:
		TestD (10m0s)

goroutine 1 [running]:
`
	got := parseOutcomes([]byte(out))
	want := []testOutcome{
		{name: "TestA", elapsed: 1500 * time.Millisecond},
		{name: "TestB", failed: true, elapsed: 200 * time.Millisecond},
		{name: "TestD", failed: true, elapsed: 10 * time.Minute},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestTableHasARowPerTestWithRunsFailuresMeanAndMax(t *testing.T) {
	var b strings.Builder
	writeTable(&b, []runOutcome{
		{tests: []testOutcome{{name: "TestA", elapsed: time.Second}, {name: "TestLonger", failed: true, elapsed: 3 * time.Second}}},
		{tests: []testOutcome{{name: "TestA", elapsed: 3 * time.Second}, {name: "TestLonger", elapsed: time.Second}}},
	})
	want := "test         runs  failed      mean       max\n" +
		"TestA           2       0     2.00s     3.00s\n" +
		"TestLonger      2       1     2.00s     3.00s\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestProgressRewritesOneLineOnATerminalAndPrintsLinesOtherwise(t *testing.T) {
	var term strings.Builder
	p := &progress{w: &term, terminal: true, total: 3, start: time.Now()}
	p.update(1, 0)
	p.note("labtest: run 2 failed (seed 5): TestX; its output: d")
	p.update(2, 1)
	p.done()
	want := "\r\033[Klabtest: 1/3 runs, 0 failed, 0s elapsed" +
		"\r\033[Klabtest: run 2 failed (seed 5): TestX; its output: d\n" +
		"\r\033[Klabtest: 2/3 runs, 1 failed, 0s elapsed\n"
	if term.String() != want {
		t.Errorf("on a terminal:\n%q\nwant\n%q", term.String(), want)
	}
	var plain strings.Builder
	p = &progress{w: &plain, total: 3, start: time.Now()}
	p.update(1, 0)
	p.note("labtest: run 2 failed (seed 5): TestX; its output: d")
	p.update(2, 1)
	p.done()
	want = "labtest: 1/3 runs, 0 failed, 0s elapsed\n" +
		"labtest: run 2 failed (seed 5): TestX; its output: d\n" +
		"labtest: 2/3 runs, 1 failed, 0s elapsed\n"
	if plain.String() != want {
		t.Errorf("not on a terminal:\n%q\nwant\n%q", plain.String(), want)
	}
}
