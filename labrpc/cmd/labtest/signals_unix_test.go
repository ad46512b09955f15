//go:build unix

package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCtrlCEndsLikeGoTestAndLeavesNoTemporaryFiles pins that a Ctrl-C (a
// SIGINT to the whole process group, as a terminal sends it) during a run
// ends labtest as it ends go test, "signal: interrupt", a FAIL line and
// status 1, and that labtest's work directory and state file are removed,
// in real time (-real: labtest waits for go test) and in virtual time
// (labtest also runs the test binary for go test -exec).
func TestCtrlCEndsLikeGoTestAndLeavesNoTemporaryFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds labtest and runs a lab's tests")
	}
	bin := filepath.Join(t.TempDir(), "labtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lab := t.TempDir()
	files := map[string]string{
		"go.mod": "module 6.5840\n\ngo 1.15\n",
		// Spins on the clock: virtual time cannot help, so labtest reruns
		// it in real time, where it runs until interrupted.
		"spin/spin_test.go": "package spin\n\nimport (\n\t\"testing\"\n\t\"time\"\n)\n\n" +
			"func TestSpins(t *testing.T) {\n\tstart := time.Now()\n\tfor time.Since(start) < time.Minute {\n\t}\n}\n",
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
	tests := []struct {
		name    string
		args    []string
		started string // a line of output once the test runs
	}{
		{"real time", []string{"-real", "-v", "-count=1", "./spin"}, "=== RUN   TestSpins"},
		{"virtual time, rerun in real time", []string{"-v", "-count=1", "./spin"}, "labtest: rerunning TestSpins in real time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = lab
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			pr, pw := io.Pipe()
			cmd.Stdout, cmd.Stderr = pw, pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			copied := make(chan struct{})
			go func() {
				defer close(copied)
				sc := bufio.NewScanner(pr)
				signalled := false
				for sc.Scan() {
					out.WriteString(sc.Text() + "\n")
					if !signalled && strings.Contains(sc.Text(), tt.started) {
						syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // the whole group, as a terminal does
						signalled = true
					}
				}
				io.Copy(io.Discard, pr)
			}()
			err := cmd.Wait()
			pw.Close()
			<-copied
			code := 0
			if exit, ok := err.(*exec.ExitError); ok {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 1 {
				t.Errorf("exit status %d, want go test's 1; output:\n%s", code, out.String())
			}
			for _, s := range []string{tt.started, "signal: interrupt", "FAIL\t6.5840/spin"} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			left, _ := filepath.Glob(filepath.Join(tmp, "labtest-*"))
			if len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestCtrlCDuringRepeatedRunsStopsThemAll pins that a Ctrl-C during
// labtest -repeat ends every test process, starts no more, counts none of
// the interrupted runs as failed, and leaves nothing behind.
func TestCtrlCDuringRepeatedRunsStopsThemAll(t *testing.T) {
	if testing.Short() {
		t.Skip("builds labtest and runs a lab's tests")
	}
	bin := buildLabtest(t)
	lab := t.TempDir()
	files := map[string]string{
		"go.mod": "module 6.5840\n\ngo 1.22\n",
		"spin/spin_test.go": "package spin\n\nimport (\n\t\"testing\"\n\t\"time\"\n)\n\n" +
			"func TestSpins(t *testing.T) {\n\tstart := time.Now()\n\tfor time.Since(start) < time.Minute {\n\t}\n}\n",
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
	tmp := t.TempDir()
	cmd := exec.Command(bin, "-repeat=4", "-procs=2", "./spin")
	cmd.Dir = lab
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The runs start once the test binary is built; each spins for a
	// minute.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if built, _ := filepath.Glob(filepath.Join(tmp, "labtest-*", "repeat.test")); len(built) > 0 {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			t.Fatalf("no test binary built after 2 minutes; output:\n%s", out.String())
		}
	}
	time.Sleep(time.Second)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // the whole group, as a terminal does
	err := cmd.Wait()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 1 {
		t.Errorf("exit status %d, want 1; output:\n%s", code, out.String())
	}
	for _, s := range []string{"labtest: interrupted (interrupt) after 0 of 4 runs\n", "labtest: 0 runs, 0 failed\n"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
