package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	st := run(context.Background(), args, &out, &errOut)
	return st, out.String(), errOut.String()
}

func TestDemoSpreadsFailsOverAndTraces(t *testing.T) {
	st, out, errOut := runCmd(t, "demo", "-servers", "3", "-n", "6")
	if st != 0 {
		t.Fatalf("demo exited %d: %s\n%s", st, errOut, out)
	}
	before, after, ok := strings.Cut(out, "stopping server s1\n")
	if !ok {
		t.Fatalf("no 'stopping server s1' in:\n%s", out)
	}
	quote := regexp.MustCompile(`cheese x2: 22\.50 for acme \(10% off\) by (s\d), caller "demo client"`)
	if n := len(quote.FindAllString(out, -1)); n != 6 {
		t.Errorf("%d quotes, want 6:\n%s", n, out)
	}
	if len(quote.FindAllString(before, -1)) != 3 {
		t.Errorf("want 3 quotes before s1 stops:\n%s", before)
	}
	for _, m := range quote.FindAllStringSubmatch(after, -1) {
		if m[1] == "s1" {
			t.Errorf("a quote by s1 after it stopped:\n%s", after)
		}
	}
	for _, m := range regexp.MustCompile(`client: span Quote/Price client trace=(\w+) span=(\w+)`).FindAllStringSubmatch(out, -1) {
		if !regexp.MustCompile(`server s\d: span Quote/Price server trace=` + m[1] + ` span=\w+ parent=` + m[2]).MatchString(out) {
			t.Errorf("client span %s has no server child:\n%s", m[2], out)
		}
	}
	if !strings.Contains(out, "with an unknown token: refused true, not executed true") {
		t.Errorf("the refused call's line is missing:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want int
		says string
	}{
		{nil, exitUsage, "usage:"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"price", "wine"}, exitUsage, "want ITEM QTY"},
		{[]string{"price", "wine", "many"}, exitUsage, `QTY "many" is not a number`},
		{[]string{"price", "-n", "0", "wine", "1"}, exitUsage, "must be positive"},
		{[]string{"price", "-bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"serve", "-tokens", "nonsense"}, exitUsage, "want TOKEN=TENANT"},
		{[]string{"serve", "-certs", "/nonexistent/dir"}, exitFailed, "certs command"},
		{[]string{"price", "-certs", "/nonexistent/dir", "wine", "1"}, exitFailed, "certs command"},
		{[]string{"demo", "-servers", "1"}, exitUsage, "at least 2"},
		{[]string{"certs", "extra"}, exitUsage, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			st, _, errOut := runCmd(t, tt.args...)
			if st != tt.want || !strings.Contains(errOut, tt.says) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", st, errOut, tt.want, tt.says)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"serve", "-h"}, {"price", "-help"}, {"certs", "-h"}, {"demo", "-h"}} {
		st, out, _ := runCmd(t, args...)
		if st != 0 || out == "" {
			t.Errorf("%v: exit %d, stdout %q", args, st, out)
		}
	}
}

// The example as a user runs it: certificates, two server processes, a
// client process asking for quotes, then SIGTERM.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and starts processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "quote")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certs := filepath.Join(dir, "certs")
	if out, err := exec.Command(bin, "certs", "-dir", certs, "-client", "proc client").CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	var addrs []string
	for _, name := range []string{"a", "b"} {
		cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-certs", certs, "-name", name, "-trace")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("server %s printed nothing; stderr: %s", name, stderr.String())
		}
		m := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(lines.Text())
		if m == nil {
			t.Fatalf("server %s said %q", name, lines.Text())
		}
		addrs = append(addrs, m[1])
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for lines.Scan() {
					if strings.Contains(lines.Text(), "stopped") {
						return
					}
				}
				t.Errorf("server %s did not say it stopped", name)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Errorf("server %s did not stop on SIGTERM", name)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("server %s: %v; stderr: %s", name, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "span Quote/Price server") {
				t.Errorf("server %s printed no span: %s", name, stderr.String())
			}
		})
	}
	cmd := exec.Command(bin, "price", "-addrs", strings.Join(addrs, ","), "-certs", certs, "-token", "t-zeta", "-n", "4", "-trace", "bread", "3")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("price: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	by := map[string]bool{}
	for _, m := range regexp.MustCompile(`bread x3: 9\.60 for zeta \(0% off\) by (\w), caller "proc client"`).FindAllStringSubmatch(out.String(), -1) {
		by[m[1]] = true
	}
	if len(by) != 2 {
		t.Fatalf("quotes by %v, want both servers:\n%s", by, out.String())
	}
	if n := strings.Count(errOut.String(), "client: span Quote/Price client"); n != 4 {
		t.Fatalf("%d client spans on stderr, want 4:\n%s", n, errOut.String())
	}
	// A wrong token is refused, the call not run, exit 1.
	cmd = exec.Command(bin, "price", "-addrs", strings.Join(addrs, ","), "-certs", certs, "-token", "bad", "bread", "1")
	msg, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed || !strings.Contains(string(msg), "bearer token") {
		t.Fatalf("bad token: %v\n%s", err, msg)
	}
}
