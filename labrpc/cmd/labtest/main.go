// Command labtest runs a lab's Go tests in virtual time.
//
// Usage, from a lab's src/ directory (or any directory of a Go module):
//
//	labtest [-labrpc=semrpc|keep] [-real] [-latency=d] [-strict] [-seed=S] [go test flags] [packages]
//	labtest -repeat=N [-procs=P] [labtest flags] [go test flags] package
//
// For the 2025 layout of 6.5840, the packages are ./raft1/, ./kvraft1/rsm/,
// ./kvraft1/ and ./shardkv1/ (the tester in tester1); the older layout's
// ./raft, ./kvraft and ./shardkv work the same way.
//
// labtest runs go test on the packages (default ".") with every Test
// function wrapped in labtest.Virtual, so sleeps, timers and timeouts take
// no real time. No file on disk changes: the wrapped tests and swapped
// imports exist only in go test's -overlay, and the module's requirement
// on semrpc only in a -modfile copy of go.mod.
//
// The lab keeps its go.mod's go version and its dependencies' versions,
// so its files compile, and go test's vet checks them, as under its own go
// test (the 2025 labs say go 1.22, whose vet accepts the course's
// non-constant format strings, and pin porcupine v1.0.3). The copy of
// go.mod requires semrpc's labrpc, labgob and labtest, and the few modules
// they import, from copies in the user's cache directory (semrpc-labtest)
// under the lab's go version, each file keeping its own module's through a
// //go:build line; it is read-only, so nothing is resolved anew. The
// wrapped tests' file sets GODEBUG asynctimerchan=0, which synctest needs
// and which modules older than go 1.23 do not get by default.
//
// With -repeat=N, labtest builds the package's test binary once (go test
// -c, vetted as go test vets) and runs it N times, P processes at a time
// (-procs, default the number of CPUs), each run with a labrpc seed of its
// own (LABRPC_SEED). A progress line (rewritten in place on a terminal)
// counts runs and failures; then a table gives, per test, its runs,
// failures and mean and longest real time; each failing run is named with
// its seed, and its output and timelines are kept in one directory whose
// path is printed. The last line reads "labtest: N runs, F failed"; the
// exit status is 1 if any run failed. -seed=S gives every run the seed S,
// which replays a run's network choices (drops, delays, reordering) as
// long as the lab makes the same calls on each end in the same order; the
// lab's own randomness (election timeouts, rand) stays its own, so a
// replay makes a failure likelier, not certain.
//
// With -labrpc=semrpc (the default), every package of the lab's module
// that the tests build imports semrpc's labrpc and labgob instead of the
// lab's own, so a KV service and the Raft package it hands its ends to
// agree. -labrpc=keep keeps the lab's network. -real swaps only, and runs
// in real time.
//
// go test's flags (-run, -race, -count, -v, -timeout, ...) pass through,
// and its output and exit status are labtest's. A test whose virtual
// clock stalls or runs slower than the real clock is stopped within about
// a second and run again in real time in a fresh process, with a line
// saying so. A goroutine found sleeping or waiting on a channel while
// holding a lock (see package labtest) is a bug even when the rerun
// passes: labtest prints a warning naming the lock and the lines after go
// test's output, and -strict fails the test instead. The timeline of a failing test's labrpc networks is written
// to a file whose path is printed.
//
// The rerun works through go test -exec: labtest runs each test binary,
// and when a test stops it for a rerun, starts it again with that test in
// real time and the tests already finished skipped (-test.skip). With
// -count above 1 nothing is skipped, so the tests that ran before the
// rerun run again. A -skip pattern of your own that contains a slash is
// combined with labtest's by "|", which go test splits at the slash.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/semrpc/semrpc/labrpc/labtest"
)

// envExecWrapper marks a labtest process started by go test -exec to run a
// test binary.
const envExecWrapper = "LABTEST_EXEC_WRAPPER"

func main() {
	run := run
	if os.Getenv(envExecWrapper) == "1" {
		run = runTestBinary
	}
	code, died := run(os.Args[1:], os.Stdout, os.Stderr)
	if died != nil {
		raise(died) // end as the child ended, now that the temporary files are gone
	}
	os.Exit(code)
}

// options are labtest's own flags.
type options struct {
	labrpc  string
	real    bool
	latency time.Duration
	strict  bool
	semrpc  string
	work    bool
	repeat  int   // runs of the test binary; 0: go test runs it once
	procs   int   // test processes at a time under -repeat
	seed    int64 // LABRPC_SEED of every run, if seedSet
	seedSet bool
}

// goTestValueFlags are go test's flags that take a value as the next
// argument; labtest must know them to tell flags from packages.
var goTestValueFlags = map[string]bool{
	"run": true, "skip": true, "count": true, "timeout": true, "bench": true, "benchtime": true,
	"cpu": true, "parallel": true, "p": true, "tags": true, "coverprofile": true, "cpuprofile": true,
	"memprofile": true, "memprofilerate": true, "blockprofile": true, "blockprofilerate": true,
	"mutexprofile": true, "mutexprofilefraction": true, "trace": true, "o": true, "exec": true,
	"list": true, "shuffle": true, "fuzz": true, "fuzztime": true, "fuzzminimizetime": true,
	"ldflags": true, "gcflags": true, "asmflags": true, "mod": true, "modfile": true, "overlay": true,
	"covermode": true, "coverpkg": true, "outputdir": true, "vet": true, "pkgdir": true,
	"toolexec": true, "buildmode": true, "compiler": true, "installsuffix": true, "C": true,
	"pgo": true, "json": false, "failfast": false, "fullpath": false, "artifacts": false,
}

const usage = `usage: labtest [labtest flags] [go test flags] [packages]

Runs go test on a lab's packages (default ".") with every Test function in
virtual time (testing/synctest), without changing any file on disk. From
the lab's src/ directory (the 2025 layout; before 2025: ./raft, ./kvraft,
./shardkv):

  labtest -run '3A|3B' ./raft1/
  labtest -race ./kvraft1/rsm/ ./kvraft1/
  labtest ./shardkv1/
  labtest -repeat 100 -run 3A ./raft1/     # hunt a flaky test
  labtest -seed 12345 -run TestX ./raft1/  # replay a failing run's network

labtest flags:
  -labrpc=semrpc|keep  semrpc (default): the lab's packages use semrpc's labrpc
                       and labgob instead of their own; keep: the lab's own
  -real                run in real time (with -labrpc=semrpc, only the swap)
  -latency=d           virtual time each labrpc message takes (default %v)
  -strict              fail tests that leave goroutines blocked (not the
                       tester's own, nor sleeping ones), or that sleep or
                       wait on a channel while holding a lock (a warning
                       otherwise)
  -repeat=N            build the tests once and run them N times, with a
                       labrpc seed of their own each; print a table per test
                       (runs, failures, mean and max time) and keep the
                       output and timelines of failing runs in a directory
  -procs=P             with -repeat, test processes at a time (default %d)
  -seed=S              labrpc's seed (LABRPC_SEED) for every run: the same
                       seed replays a run's network choices (drops, delays)
                       given the same calls; the lab's own randomness (its
                       timeouts, rand calls) stays its own
  -semrpc=dir          semrpc's source (default: found from this binary)
  -work                print the overlay and modfile directory and keep it

go test flags (-run, -race, -count, -v, -timeout, ...) pass through; the
exit status and output are go test's. The lab keeps its go.mod's go version
(so vet reports what its own go test reports) and its dependencies'
versions.
`

// splitArgs separates labtest's flags from go test's flags and packages.
func splitArgs(args []string) (opts options, goArgs, pkgs []string, err error) {
	fs := flag.NewFlagSet("labtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.labrpc, "labrpc", "semrpc", "")
	fs.BoolVar(&opts.real, "real", false, "")
	fs.DurationVar(&opts.latency, "latency", labtest.DefaultLatency, "")
	fs.BoolVar(&opts.strict, "strict", false, "")
	fs.StringVar(&opts.semrpc, "semrpc", "", "")
	fs.BoolVar(&opts.work, "work", false, "")
	fs.IntVar(&opts.repeat, "repeat", 0, "")
	fs.IntVar(&opts.procs, "procs", 0, "")
	fs.Int64Var(&opts.seed, "seed", 0, "")
	set := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pkgs = append(pkgs, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pkgs = append(pkgs, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "h", "help":
			return opts, nil, nil, flag.ErrHelp
		case "labrpc", "real", "latency", "strict", "semrpc", "work", "repeat", "procs", "seed":
			rest := []string{a}
			if !hasValue && name != "real" && name != "strict" && name != "work" && i+1 < len(args) {
				rest = append(rest, args[i+1])
				i++
			}
			if err := fs.Parse(rest); err != nil {
				return opts, nil, nil, err
			}
			set[name] = true
			continue
		case "overlay", "modfile", "exec":
			return opts, nil, nil, fmt.Errorf("-%s: labtest sets this go test flag itself", name)
		}
		goArgs = append(goArgs, a)
		if !hasValue && goTestValueFlags[name] && i+1 < len(args) {
			goArgs = append(goArgs, args[i+1])
			i++
		}
	}
	if opts.labrpc != "semrpc" && opts.labrpc != "keep" {
		return opts, nil, nil, fmt.Errorf("-labrpc=%q: want semrpc or keep", opts.labrpc)
	}
	if opts.latency < 0 {
		return opts, nil, nil, fmt.Errorf("-latency=%v: want a duration ≥ 0", opts.latency)
	}
	if set["repeat"] && opts.repeat < 1 {
		return opts, nil, nil, fmt.Errorf("-repeat=%d: want a number of runs ≥ 1", opts.repeat)
	}
	opts.seedSet = set["seed"]
	if set["procs"] && opts.procs < 1 {
		return opts, nil, nil, fmt.Errorf("-procs=%d: want a number of processes ≥ 1", opts.procs)
	}
	if set["procs"] && opts.repeat == 0 {
		return opts, nil, nil, errors.New("-procs: only with -repeat")
	}
	if opts.procs == 0 {
		opts.procs = runtime.NumCPU()
	}
	if len(pkgs) == 0 {
		pkgs = []string{"."}
	}
	if opts.repeat > 0 && len(pkgs) != 1 {
		return opts, nil, nil, fmt.Errorf("-repeat: runs the tests of one package, not %d", len(pkgs))
	}
	return opts, goArgs, pkgs, nil
}

// run runs go test as labtest's arguments say and returns its exit status,
// and the signal that ended it if one did (labtest's temporary files are
// removed first).
func run(args []string, stdout, stderr io.Writer) (code int, died os.Signal) {
	opts, goArgs, pkgs, err := splitArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, usage, labtest.DefaultLatency, runtime.NumCPU())
		return 0, nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		fmt.Fprintf(stderr, usage, labtest.DefaultLatency, runtime.NumCPU())
		return 2, nil
	}
	sigs, stop := catchSignals()
	defer stop()
	work, err := os.MkdirTemp("", "labtest-")
	if err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	if opts.work {
		fmt.Fprintf(stderr, "WORK=%s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	warnings := filepath.Join(work, "warnings")
	defer printWarnings(warnings, stderr)
	prep, err := prepare(opts, pkgs, work)
	if err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	cmdArgs := []string{"test", "-overlay", prep.overlay}
	if prep.modfile != "" {
		cmdArgs = append(cmdArgs, "-modfile", prep.modfile, "-mod=readonly")
	}
	env := append(os.Environ(), labtest.EnvLatency+"="+opts.latency.String(), labtest.EnvWarnings+"="+warnings)
	if opts.strict {
		env = append(env, labtest.EnvStrict+"=1")
	}
	if opts.real {
		env = append(env, labtest.EnvReal+"=1")
	}
	if opts.repeat > 0 {
		return runRepeated(opts, prep, pkgs[0], goArgs, env, sigs, stdout, stderr, work)
	}
	if opts.seedSet {
		env = append(env, "LABRPC_SEED="+strconv.FormatInt(opts.seed, 10))
	}
	if !opts.real {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "labtest: %v\n", err)
			return 1, nil
		}
		cmdArgs = append(cmdArgs, "-exec", self)
		env = append(env, envExecWrapper+"=1")
	}
	cmdArgs = append(cmdArgs, goArgs...)
	cmdArgs = append(cmdArgs, pkgs...)
	cmd := exec.Command("go", cmdArgs...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if sig, ok := interrupted(sigs); ok {
		return 1, sig
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	died, _, err = waitRelaying(cmd, sigs)
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() >= 0 {
			return exit.ExitCode(), nil
		}
		if died != nil {
			return 1, died
		}
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	return 0, nil
}
