package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a server goroutine to write while
// the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingRE = regexp.MustCompile(`serving on (\S+),`)

// startServer runs "kv server" in this process until the test ends and
// returns its address.
func startServer(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, append([]string{"server", "-addr", "127.0.0.1:0"}, args...), &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("server exited with %d: %s", code, stderr.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("server exited with %d: %s", code, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("server did not start: %s", stderr.String())
	return ""
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "missing command"},
		{"unknown command", []string{"delete", "k"}, `unknown command "delete"`},
		{"get without key", []string{"get"}, "get takes 1 argument(s), got 0"},
		{"get with two keys", []string{"get", "a", "b"}, "get takes 1 argument(s), got 2"},
		{"put without value", []string{"put", "k"}, "put takes 2 argument(s), got 1"},
		{"append without value", []string{"append", "k"}, "append takes 2 argument(s), got 1"},
		{"unknown flag", []string{"-port", "1", "get", "k"}, "flag provided but not defined: -port"},
		{"bad timeout", []string{"-timeout", "0s", "get", "k"}, "-timeout must be positive"},
		{"server argument", []string{"server", "extra"}, "server takes no arguments"},
		{"server unknown flag", []string{"server", "-dir", "x"}, "flag provided but not defined: -dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "usage:") {
				t.Errorf("stderr %q, want %q and the usage", stderr, tt.want)
			}
		})
	}
}

func TestCommandsInMemory(t *testing.T) {
	addr := startServer(t)
	steps := []struct {
		args      []string
		stdout    string
		stderrHas string
	}{
		{[]string{"get", "k"}, "\n", ""},
		{[]string{"put", "k", "v1"}, "OK\n", "not durable"},
		{[]string{"append", "k", "+2"}, "v1\n", "not durable"},
		{[]string{"get", "k"}, "v1+2\n", ""},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(append([]string{"-addr", addr}, st.args...)...)
		if code != 0 || stdout != st.stdout {
			t.Fatalf("kv %q: exit %d, stdout %q (want %q), stderr %q", st.args, code, stdout, st.stdout, stderr)
		}
		if st.stderrHas != "" && !strings.Contains(stderr, st.stderrHas) {
			t.Errorf("kv %q: stderr %q, want a note containing %q", st.args, stderr, st.stderrHas)
		}
		if st.stderrHas == "" && stderr != "" {
			t.Errorf("kv %q: unexpected stderr %q", st.args, stderr)
		}
	}
}

func TestCommandsDurable(t *testing.T) {
	dir := t.TempDir()
	addr := startServer(t, "-data", dir)
	for _, st := range []struct {
		args   []string
		stdout string
	}{
		{[]string{"put", "k", "a"}, "OK\n"},
		{[]string{"append", "k", "b"}, "a\n"},
		{[]string{"get", "k"}, "ab\n"},
	} {
		code, stdout, stderr := runCLI(append([]string{"-addr", addr}, st.args...)...)
		if code != 0 || stdout != st.stdout || stderr != "" {
			t.Fatalf("kv %q: exit %d, stdout %q (want %q), stderr %q", st.args, code, stdout, st.stdout, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, dataFile)); err != nil {
		t.Fatalf("no data file: %v", err)
	}
}

func TestCallFailureSaysNotExecuted(t *testing.T) {
	// Nothing listens on this address: the call was never sent.
	code, stdout, stderr := runCLI("-addr", "127.0.0.1:1", "-timeout", "200ms", "put", "k", "v")
	if code != exitFailed || stdout != "" {
		t.Fatalf("exit %d stdout %q, want %d and nothing", code, stdout, exitFailed)
	}
	if !strings.Contains(stderr, "kv: put did not execute") {
		t.Fatalf("stderr %q", stderr)
	}
}

// TestBadDataDir pins that a server never starts with a silently empty
// store over a missing directory or a file that is not a kv store.
func TestBadDataDir(t *testing.T) {
	notBolt := t.TempDir()
	if err := os.WriteFile(filepath.Join(notBolt, dataFile), bytes.Repeat([]byte("not a database\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	isFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(isFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dirAsDB := t.TempDir()
	if err := os.Mkdir(filepath.Join(dirAsDB, dataFile), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, want string
	}{
		{"missing directory", filepath.Join(t.TempDir(), "nope"), "no such file or directory"},
		{"directory is a file", isFile, "not a directory"},
		{"kv.db not bbolt", notBolt, "not a usable bbolt database"},
		{"kv.db is a directory", dirAsDB, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI("server", "-addr", "127.0.0.1:0", "-data", tt.dir)
			if code != exitFailed || strings.Contains(stdout, "serving") {
				t.Fatalf("exit %d stdout %q, want %d and no serving", code, stdout, exitFailed)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q, want %q", stderr, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(notBolt, dataFile)); !bytes.HasPrefix(b, []byte("not a database")) {
		t.Fatal("the server overwrote a file it could not read")
	}
}
