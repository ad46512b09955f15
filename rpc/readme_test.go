package rpc_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmePrograms returns the Go programs (blocks of package main) of the
// repository's README, in order.
func readmePrograms(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var progs []string
	for _, m := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllSubmatch(b, -1) {
		if regexp.MustCompile(`(?m)^package main$`).Match(m[1]) {
			progs = append(progs, string(m[1]))
		}
	}
	return progs
}

// buildProgram builds src, a main package using this repository, in a
// module of its own that requires the repository through a replace
// directive (as a user's module requires it with go get), and returns the
// binary. It uses only the module cache: no network.
func buildProgram(t *testing.T, src string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	// The repository's own requirements, so that the build needs nothing
	// beyond what building the repository needed.
	mod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(gomod), "module readme.example/program") +
		"\nrequire github.com/semrpc/semrpc v0.0.0-00010101000000-000000000000\n" +
		"\nreplace github.com/semrpc/semrpc => " + root + "\n"
	dir := t.TempDir()
	for name, data := range map[string]string{"go.mod": mod, "go.sum": string(gosum), "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "program")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README program does not build: %v\n%s\n--- the program:\n%s", err, out, src)
	}
	return bin
}

// runProgram runs bin with args in dir, bounded, and returns its stdout.
func runProgram(t *testing.T, dir string, env []string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), args, err, &stdout, &stderr)
	}
	return stdout.String()
}

// TestReadmeProgramsBuildAndRun: every Go program of the README (a block
// that is package main) builds in a module of its own against this
// repository, so that the README cannot rot. The first program runs and
// prints its sum; the exactly-once bank runs as the README says, as
// separate processes: its server is killed with SIGKILL between deposits,
// a deposit made while it is down waits for it, and the balances are right.
func TestReadmeProgramsBuildAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	progs := readmePrograms(t)
	if len(progs) < 2 {
		t.Fatalf("the README has %d Go programs, want the first program and the bank", len(progs))
	}
	bins := make([]string, len(progs))
	for i, src := range progs {
		bins[i] = buildProgram(t, src)
	}
	if out := runProgram(t, t.TempDir(), nil, bins[0]); out != "2 + 40 = 42\n" {
		t.Errorf("the first program printed %q, want \"2 + 40 = 42\"", out)
	}
	var bank string
	for i, src := range progs {
		if strings.Contains(src, "boltstore.Open") && strings.Contains(src, "ExactlyOnce") {
			bank = bins[i]
		}
	}
	if bank == "" {
		t.Fatal("the README has no exactly-once program (boltstore.Open, ExactlyOnce)")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"BANK_ADDR=" + l.Addr().String()}
	l.Close()

	server := startBankServer(t, dir, env, bank)
	for _, tt := range []struct{ amount, want string }{{"10", "alice 10\n"}, {"5", "alice 15\n"}} {
		if out := runProgram(t, dir, env, bank, "deposit", "alice", tt.amount); out != tt.want {
			t.Fatalf("deposit %s printed %q, want %q", tt.amount, out, tt.want)
		}
	}
	server.kill(t)
	if _, err := os.Stat(filepath.Join(dir, "data", "bank.db")); err != nil {
		t.Fatalf("the store's file: %v", err)
	}
	done := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bank, "deposit", "alice", "20")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			out = append(out, []byte(err.Error())...)
		}
		done <- string(out)
	}()
	server = startBankServer(t, dir, env, bank)
	select {
	case out := <-done:
		if out != "alice 35\n" {
			t.Errorf("the deposit made while the server was down printed %q, want \"alice 35\"", out)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("the deposit made while the server was down did not end")
	}
	server.kill(t)
}

// bankServer is the README's bank server, in its own process.
type bankServer struct {
	cmd    *exec.Cmd
	logged chan struct{} // closed when its stderr ends
}

// startBankServer starts `bank serve` in dir and waits until it says it
// serves.
func startBankServer(t *testing.T, dir string, env []string, bin string) *bankServer {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &bankServer{cmd: cmd, logged: make(chan struct{})}
	serving := make(chan struct{})
	var log bytes.Buffer
	go func() {
		defer close(s.logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "bank: serving on") {
				close(serving)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() { s.kill(t) })
	select {
	case <-serving:
	case <-s.logged:
		cmd.Wait()
		t.Fatalf("the bank server ended before serving:\n%s", &log)
	case <-time.After(60 * time.Second):
		t.Fatal("the bank server did not say it serves within 60s")
	}
	return s
}

// kill ends the server with SIGKILL, once, and waits for it.
func (s *bankServer) kill(t *testing.T) {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("killing the bank server: %v", err)
	}
	<-s.logged
	s.cmd.Wait()
}
