package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/semrpc/semrpc/labrpc/labtest"
)

// runTestBinary runs a test binary for go test -exec. A test that trips
// labtest's detector ends the binary with labtest.RerunExitCode after
// recording itself in the state file; runTestBinary then starts the binary
// again with that test in real time and the tests already finished
// skipped, until a run ends by itself. The output is the runs' output one
// after the other, with a single final PASS or FAIL line. If a signal ends
// the test binary, runTestBinary returns it, after removing its state file,
// for labtest to end with it too.
func runTestBinary(args []string, stdout, stderr io.Writer) (code int, died os.Signal) {
	return runTestBinaryIn("", nil, args, stdout, stderr)
}

// runTestBinaryIn is runTestBinary with the test binary run in dir, with
// env added to labtest's environment; dir "" is labtest's own, and only
// then does the binary read labtest's standard input.
func runTestBinaryIn(dir string, env, args []string, stdout, stderr io.Writer) (code int, died os.Signal) {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "labtest: no test binary to run")
		return 2, nil
	}
	sigs, stop := catchSignals()
	defer stop()
	state, err := os.CreateTemp("", "labtest-state-")
	if err != nil {
		fmt.Fprintf(stderr, "labtest: %v\n", err)
		return 1, nil
	}
	state.Close()
	defer os.Remove(state.Name())

	binary, testArgs := args[0], args[1:]
	userSkip, count := "", "1"
	for _, a := range testArgs {
		if v, ok := strings.CutPrefix(a, "-test.skip="); ok {
			userSkip = v
		}
		if v, ok := strings.CutPrefix(a, "-test.count="); ok {
			count = v
		}
	}
	var real, done []string
	failed := false
	for {
		runArgs := append([]string(nil), testArgs...)
		if len(done) > 0 && count == "1" {
			skip := "^(" + strings.Join(quoteAll(done), "|") + ")$"
			if userSkip != "" {
				skip = userSkip + "|" + skip
			}
			runArgs = append(withoutFlag(runArgs, "-test.skip="), "-test.skip="+skip)
		}
		cmd := exec.Command(binary, runArgs...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), env...), labtest.EnvState+"="+state.Name(), labtest.EnvRealTests+"="+strings.Join(real, ","))
		cmd.Stderr = stderr
		if dir == "" {
			cmd.Stdin = os.Stdin // go test's -exec: the one test process
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			fmt.Fprintf(stderr, "labtest: %v\n", err)
			return 1, nil
		}
		if sig, ok := interrupted(sigs); ok {
			return 1, sig
		}
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "labtest: %v\n", err)
			return 1, nil
		}
		final := copyHoldingVerdict(stdout, out)
		died, received, err := waitRelaying(cmd, sigs)
		if died != nil || received != nil {
			// Interrupted: no rerun. The binary may have exited by itself
			// (to be rerun) just as the signal came.
			if final != "" {
				fmt.Fprintln(stdout, final)
			}
			if died == nil {
				died = received
			}
			return 1, died
		}
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			fmt.Fprintf(stderr, "labtest: %v\n", err)
			return 1, nil
		}
		rerun, finished, anyFailed := readState(state.Name())
		if code == labtest.RerunExitCode && rerun != "" && !contains(real, rerun) {
			real = append(real, rerun)
			done = finished
			failed = failed || anyFailed
			if err := os.Truncate(state.Name(), 0); err != nil {
				fmt.Fprintf(stderr, "labtest: %v\n", err)
				return 1, nil
			}
			for _, d := range finished {
				appendLine(state.Name(), "done "+d+" "+verdict(!anyFailed))
			}
			continue
		}
		if failed && code == 0 {
			code = 1
			if final == "PASS" {
				final = "FAIL"
			}
		}
		if final != "" {
			fmt.Fprintln(stdout, final)
		}
		return code, nil
	}
}

// copyHoldingVerdict copies src to dst line by line, except a line that is
// exactly PASS or FAIL, which it returns instead (the last one) so the
// caller can print one verdict for all runs.
func copyHoldingVerdict(dst io.Writer, src io.Reader) (verdict string) {
	br := bufio.NewReader(src)
	for {
		line, err := br.ReadString('\n')
		if trimmed := strings.TrimRight(line, "\n"); trimmed == "PASS" || trimmed == "FAIL" {
			verdict = trimmed
		} else if line != "" {
			io.WriteString(dst, line)
		}
		if err != nil {
			return verdict
		}
	}
}

// readState reads the state file: the test to rerun, the tests finished
// before it, and whether any of them failed.
func readState(path string) (rerun string, finished []string, anyFailed bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "done":
			finished = append(finished, f[1])
			if f[2] == "fail" {
				anyFailed = true
			}
		case len(f) >= 2 && f[0] == "rerun":
			rerun = f[1]
		}
	}
	return rerun, finished, anyFailed
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(line + "\n")
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "fail"
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = regexp.QuoteMeta(n)
	}
	return out
}

func withoutFlag(args []string, prefix string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, prefix) {
			out = append(out, a)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
