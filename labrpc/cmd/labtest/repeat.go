package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
	"github.com/semrpc/semrpc/labrpc/labtest"
)

// With -repeat N, labtest builds the package's test binary once (go test
// -c, which vets it as go test does) and runs it N times, P processes at a
// time, the way students hunt flaky tests: each run with a labrpc seed of
// its own, its output kept only if it failed.

// testFlags are go test's flags that the test binary takes (as -test.X);
// with -repeat the others go to go test -c.
var testFlags = map[string]bool{
	"run": true, "skip": true, "count": true, "timeout": true, "failfast": true, "short": true,
	"cpu": true, "parallel": true, "shuffle": true, "v": true, "fullpath": true,
}

// splitTestFlags separates go test's arguments into build flags (for go test
// -c) and the test binary's flags.
func splitTestFlags(goArgs []string) (build, test []string, timeout string) {
	timeout = "10m0s" // go test's default
	for i := 0; i < len(goArgs); i++ {
		a := goArgs[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && goTestValueFlags[name] && i+1 < len(goArgs) {
			value, hasValue = goArgs[i+1], true
			i++
		}
		if !testFlags[name] {
			build = append(build, a)
			if hasValue && !strings.Contains(a, "=") {
				build = append(build, value)
			}
			continue
		}
		switch {
		case name == "v":
			// Every run is verbose: its verdicts per test make the table.
		case name == "timeout":
			timeout = value
		case hasValue:
			test = append(test, "-test."+name+"="+value)
		default:
			test = append(test, "-test."+name)
		}
	}
	return build, test, timeout
}

// askedVerbose reports whether go test's -v is among goArgs.
func askedVerbose(goArgs []string) bool {
	for _, a := range goArgs {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "v" && value != "false" {
			return true
		}
	}
	return false
}

// runOutcome is what one run of the test binary gave.
type runOutcome struct {
	index    int // from 0
	seed     int64
	failed   bool
	tests    []testOutcome // in the order they ended
	dir      string        // where its output and timelines are, if it failed
	elapsed  time.Duration
	died     os.Signal
	failures []string // names of the failed tests
}

type testOutcome struct {
	name    string
	failed  bool
	elapsed time.Duration
}

var (
	verdictLine = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)
	timedOut    = regexp.MustCompile(`^\s+(Test\S*) \(([0-9a-z.µ]+)\)$`)
)

// parseOutcomes reads a verbose test binary's output: the verdict of each
// top-level test, and the tests running when it timed out.
func parseOutcomes(out []byte) []testOutcome {
	var tests []testOutcome
	inTimeout := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "panic: test timed out after ") {
			inTimeout = true
			continue
		}
		if inTimeout {
			if m := timedOut.FindStringSubmatch(line); m != nil && !strings.Contains(m[1], "/") {
				d, _ := time.ParseDuration(m[2])
				tests = append(tests, testOutcome{name: m[1], failed: true, elapsed: d})
				continue
			}
			if strings.TrimSpace(line) != "running tests:" {
				inTimeout = false
			}
			continue
		}
		m := verdictLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[2], "/") || m[1] == "SKIP" {
			continue
		}
		secs, _ := strconv.ParseFloat(m[3], 64)
		tests = append(tests, testOutcome{name: m[2], failed: m[1] == "FAIL", elapsed: time.Duration(secs * float64(time.Second))})
	}
	return tests
}

// lockedBuffer collects a run's output from its stdout and stderr copiers.
type lockedBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// runRepeated builds the test binary of the one package in pkgs and runs
// it opts.repeat times, opts.procs at a time.
func runRepeated(opts options, prep prepared, pkg string, goArgs []string, env []string, sigs chan os.Signal, stdout, stderr io.Writer, work string) (int, os.Signal) {
	if len(prep.dirs) != 1 {
		fmt.Fprintf(stderr, "labtest: -repeat runs the tests of one package; %d match\n", len(prep.dirs))
		return 2, nil
	}
	build, testArgs, timeout := splitTestFlags(goArgs)
	binary := filepath.Join(work, "repeat.test")
	cmdArgs := []string{"test", "-c", "-o", binary, "-overlay", prep.overlay}
	if prep.modfile != "" {
		cmdArgs = append(cmdArgs, "-modfile", prep.modfile, "-mod=readonly")
	}
	cmdArgs = append(append(cmdArgs, build...), prep.pkgs...)
	cmd := exec.Command("go", cmdArgs...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	died, _, err := waitRelaying(cmd, sigs)
	if died != nil {
		return 1, died
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() > 0 {
			return exit.ExitCode(), nil
		}
		fmt.Fprintf(stderr, "labtest: go test -c: %v\n", err)
		return 1, nil
	}
	if _, err := os.Stat(binary); err != nil {
		fmt.Fprintf(stderr, "labtest: %s has no test files to repeat\n", prep.pkgs[0])
		return 1, nil
	}
	keep, err := os.MkdirTemp("", "labtest-repeat-")
	if err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	args := append([]string{binary, "-test.v=true", "-test.paniconexit0", "-test.timeout=" + timeout}, testArgs...)
	if !askedVerbose(goArgs) {
		// -test.v is for the table: what labrpc and labtest print only
		// at -v stays out of the kept outputs.
		env = append(append([]string(nil), env...), labhook.EnvQuiet+"=1")
	}

	seeds := make([]int64, opts.repeat)
	for i := range seeds {
		seeds[i] = opts.seed
		if !opts.seedSet {
			seeds[i] = rand.Int64N(1 << 53) // exact in a float64, for tools that read them
		}
	}
	var (
		next    = make(chan int)
		results = make(chan runOutcome)
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := 0; w < opts.procs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results <- runOnce(i, seeds[i], prep.dirs[0], keep, env, args)
			}
		}()
	}
	go func() {
		defer close(next)
		for i := 0; i < opts.repeat; i++ {
			select {
			case next <- i:
			case <-stop:
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	in := results

	progress := newProgress(stdout, opts.repeat)
	var (
		outcomes []runOutcome
		failed   int
		signaled os.Signal
	)
	stopOnce := sync.OnceFunc(func() { close(stop) })
	defer stopOnce()
	for in != nil {
		select {
		case r, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			if r.died != nil || (signaled != nil && r.failed) {
				// Ended by a signal (a Ctrl-C reaches the whole process
				// group): not a run, and not a failure.
				if signaled == nil {
					signaled = r.died
				}
				stopOnce()
				os.RemoveAll(r.dir)
				continue
			}
			outcomes = append(outcomes, r)
			if r.failed {
				failed++
				progress.note(fmt.Sprintf("labtest: run %d failed (seed %d): %s; its output: %s", r.index+1, r.seed, failedList(r), r.dir))
			}
			progress.update(len(outcomes), failed)
		case s := <-sigs:
			// The runs in progress get the signal too (each relays it to
			// its test process); start no more.
			if signaled == nil {
				signaled = s
			}
			stopOnce()
		}
	}
	progress.done()
	writeTable(stdout, outcomes)
	if failed > 0 {
		sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].index < outcomes[j].index })
		for _, r := range outcomes {
			if r.failed && len(r.failures) > 0 {
				fmt.Fprintf(stdout, "labtest: replay run %d's network: labtest -seed %d -run '^(%s)$' %s\n", r.index+1, r.seed, strings.Join(quoteAll(r.failures), "|"), pkg)
				break
			}
		}
		fmt.Fprintf(stdout, "labtest: the output of the failing runs, with their timelines: %s\n", keep)
	} else {
		os.RemoveAll(keep)
	}
	if signaled != nil {
		fmt.Fprintf(stdout, "labtest: interrupted (%v) after %d of %d runs\n", signaled, len(outcomes), opts.repeat)
	}
	// The warnings of passing runs, before the last line (which must stay
	// the last); the file is then emptied for main's deferred print.
	warnings := filepath.Join(work, "warnings")
	printWarnings(warnings, stderr)
	os.Remove(warnings)
	fmt.Fprintf(stdout, "labtest: %d runs, %d failed\n", len(outcomes), failed)
	if signaled != nil {
		return 1, nil // as go test ends on a Ctrl-C
	}
	if failed > 0 {
		return 1, nil
	}
	return 0, nil
}

// runOnce runs the test binary once in dir with seed, and keeps its output
// and timelines under keep if it fails.
func runOnce(i int, seed int64, dir, keep string, env, args []string) runOutcome {
	r := runOutcome{index: i, seed: seed, dir: filepath.Join(keep, fmt.Sprintf("run-%03d-seed-%d", i+1, seed))}
	start := time.Now()
	var out lockedBuffer
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		fmt.Fprintf(&out, "labtest: %v\n", err)
		r.failed = true
	} else {
		runEnv := append(append([]string(nil), env...), "LABRPC_SEED="+strconv.FormatInt(seed, 10), labtest.EnvTraceDir+"="+r.dir)
		code, died := runTestBinaryIn(dir, runEnv, args, &out, &out)
		r.failed = code != 0
		r.died = died
	}
	r.elapsed = time.Since(start)
	data := out.Bytes()
	r.tests = parseOutcomes(data)
	for _, t := range r.tests {
		if t.failed {
			r.failures = append(r.failures, t.name)
		}
	}
	if r.failed {
		header := fmt.Sprintf("labtest: run %d, LABRPC_SEED=%d, in %s: %s\n\n", i+1, seed, dir, strings.Join(args, " "))
		os.WriteFile(filepath.Join(r.dir, "output.txt"), append([]byte(header), data...), 0o644)
		return r
	}
	os.RemoveAll(r.dir)
	r.dir = ""
	return r
}

func failedList(r runOutcome) string {
	if len(r.failures) == 0 {
		return "the test process failed"
	}
	return strings.Join(r.failures, ", ")
}

// writeTable prints, per test in the order they first ended, its runs,
// failures and mean and longest real time.
func writeTable(w io.Writer, outcomes []runOutcome) {
	type row struct {
		name           string
		runs, failures int
		total, max     time.Duration
	}
	var rows []*row
	byName := map[string]*row{}
	for _, r := range outcomes {
		for _, t := range r.tests {
			rw := byName[t.name]
			if rw == nil {
				rw = &row{name: t.name}
				byName[t.name] = rw
				rows = append(rows, rw)
			}
			rw.runs++
			if t.failed {
				rw.failures++
			}
			rw.total += t.elapsed
			rw.max = max(rw.max, t.elapsed)
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "labtest: no test ran (does -run match a test?)")
		return
	}
	width := len("test")
	for _, rw := range rows {
		width = max(width, len(rw.name))
	}
	fmt.Fprintf(w, "%-*s  %5s  %6s  %8s  %8s\n", width, "test", "runs", "failed", "mean", "max")
	for _, rw := range rows {
		mean := rw.total / time.Duration(rw.runs)
		fmt.Fprintf(w, "%-*s  %5d  %6d  %8s  %8s\n", width, rw.name, rw.runs, rw.failures, seconds(mean), seconds(rw.max))
	}
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// progress shows how many runs are done: one line rewritten in place on a
// terminal, a line per run otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	total    int
	start    time.Time
	shown    bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	if p.terminal {
		p.update(0, 0)
	}
	return p
}

func (p *progress) line(done, failed int) string {
	return fmt.Sprintf("labtest: %d/%d runs, %d failed, %s elapsed", done, p.total, failed, time.Since(p.start).Round(time.Second))
}

func (p *progress) update(done, failed int) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(done, failed))
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, p.line(done, failed))
}

// note prints a line of its own above the progress line.
func (p *progress) note(s string) {
	if p.terminal && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, s)
}

func (p *progress) done() {
	if p.terminal && p.shown {
		fmt.Fprintln(p.w)
	}
}
