package labtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The state file (EnvState) is how a test process tells the labtest
// command which tests it finished and which one it stopped at. One line per
// event:
//
//	done <test name> pass|fail
//	rerun <test name> <reason on one line>

// recordOutcome appends a "done" line when t finishes, if the command asked
// for it.
func recordOutcome(t *testing.T, c config) {
	if c.state == "" || strings.Contains(t.Name(), "/") {
		return
	}
	t.Cleanup(func() {
		verdict := "pass"
		if t.Failed() {
			verdict = "fail"
		}
		appendState(c.state, fmt.Sprintf("done %s %s", t.Name(), verdict))
	})
}

// requestRerun records that t must be rerun in real time and ends the
// process: the command starts a new one, with t in real time and the tests
// already finished skipped.
func requestRerun(t *testing.T, c config, reason string) {
	oneLine := strings.Join(strings.Fields(reason), " ")
	appendState(c.state, fmt.Sprintf("rerun %s %s", t.Name(), oneLine))
	fmt.Fprintf(os.Stdout, "labtest: %s: %s\nlabtest: rerunning %s in real time\n", t.Name(), reason, t.Name())
	os.Exit(RerunExitCode)
}

func appendState(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "labtest: %s: %v\n", EnvState, err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		fmt.Fprintf(os.Stderr, "labtest: %s: %v\n", EnvState, err)
	}
}

// warn reports a bug found in a test that goes on (or is rerun): in the
// test's log, and in the command's warnings file, whose lines the command
// prints once go test has ended.
func warn(t *testing.T, c config, msg string) {
	t.Helper()
	t.Logf("labtest: warning: %s", msg)
	if c.warnings != "" {
		appendState(c.warnings, "labtest: warning: "+msg)
	}
}
