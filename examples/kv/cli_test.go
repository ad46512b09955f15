package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/rpc"
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
		{"server with -data and -pg", []string{"server", "-data", "d", "-pg", "postgres://h/db"}, "-data and -pg exclude each other"},
		{"empty entry in -addrs", []string{"-addrs", "127.0.0.1:1,,127.0.0.1:2", "get", "k"}, "-addrs takes host:port,host:port,... with no empty entry"},
		{"address twice in -addrs", []string{"-addrs", "127.0.0.1:1,127.0.0.1:1", "get", "k"}, `-addrs lists "127.0.0.1:1" twice`},
		{"server unknown flag", []string{"server", "-dir", "x"}, "flag provided but not defined: -dir"},
		{"unknown flag after command", []string{"get", "k", "-port", "1"}, "flag provided but not defined: -port"},
		{"flag value missing after command", []string{"get", "k", "-timeout"}, "flag needs an argument: -timeout"},
		{"bad timeout after command", []string{"put", "k", "v", "-timeout", "soon"}, `invalid value "soon" for flag -timeout`},
		{"client flag before server", []string{"-addr", "127.0.0.1:0", "server"}, `the server's flags go after "server": kv server [-addr host:port] [-data DIR | -pg URL]`},
		{"server flag before server", []string{"-data", "d", "server"}, `-data (the server's flags go after "server")`},
		{"client flag after server", []string{"server", "-timeout", "1s"}, "flag provided but not defined: -timeout"},
		{"server flag on a client", []string{"get", "k", "-data", "d"}, "flag provided but not defined: -data"},
		{"flag-like value without --", []string{"put", "k", "-1"}, `flag provided but not defined: -1 (the flags of get, put and append are -addr, -addrs and -timeout; an argument starting with "-" goes after "--", as in kv put KEY -- -VALUE)`},
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

// TestHelp pins that every way of asking for help prints the commands and
// every flag with its meaning on stdout, and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"--help"},
		{"server", "-h"}, {"server", "--help"}, {"server", "-data", "d", "-h"},
		{"get", "-h"}, {"put", "k", "v", "--help"}, {"-addr", "x:1", "append", "-h"},
	} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || stderr != "" {
			t.Errorf("kv %q: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		for _, want := range []string{
			"usage:", "get KEY", "put KEY VALUE", "append KEY VALUE", "kv server",
			"-addr host:port", "the server's host:port", `(default "127.0.0.1:7070")`,
			"-timeout duration", "waiting for a server (or its database) that is down or restarting", "(default 10s)",
			"-data DIR", "creating DIR (mode 0700) if missing",
			"before or after the command", `after "server"`, "Exit status", "3 get found no such key",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("kv %q: help lacks %q:\n%s", args, want, stdout)
			}
		}
	}
}

// TestClientFlagsAnywhere pins that the client's flags work before the
// command, after it and among its arguments, and that "--" ends them.
func TestClientFlagsAnywhere(t *testing.T) {
	addr := startServer(t, "-data", t.TempDir())
	steps := []struct {
		args   []string
		stdout string
	}{
		{[]string{"-addr", addr, "put", "k", "a"}, "OK\n"},
		{[]string{"put", "-addr", addr, "k", "b"}, "OK\n"},
		{[]string{"put", "k", "c", "-timeout", "5s", "-addr", addr}, "OK\n"},
		{[]string{"-timeout", "5s", "append", "k", "-addr=" + addr, "d"}, "c\n"},
		{[]string{"get", "k", "-addr", addr}, "cd\n"},
		{[]string{"-addr", addr, "put", "--", "-k", "-1"}, "OK\n"},
		{[]string{"-addr", addr, "get", "--", "-k"}, "-1\n"},
		{[]string{"get", "-addr", addr, "--", "-k"}, "-1\n"},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(st.args...)
		if code != 0 || stdout != st.stdout || stderr != "" {
			t.Fatalf("kv %q: exit %d, stdout %q (want %q), stderr %q", st.args, code, stdout, st.stdout, stderr)
		}
	}
}

// TestMissingKeyExitsNotFound pins that get tells a missing key (nothing on
// stdout, "key not found" on stderr, exit 3) from a key set to "" (an
// empty line, exit 0), in memory and durably.
func TestMissingKeyExitsNotFound(t *testing.T) {
	for _, backend := range []struct {
		name string
		args []string
	}{
		{"memory", nil},
		{"durable", []string{"-data", t.TempDir()}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			addr := startServer(t, backend.args...)
			code, stdout, stderr := runCLI("-addr", addr, "get", "nope")
			if code != exitNotFound || stdout != "" || !strings.Contains(stderr, `kv: get "nope": key not found`) {
				t.Errorf("get of a missing key: exit %d, stdout %q, stderr %q; want %d, nothing, key not found",
					code, stdout, stderr, exitNotFound)
			}
			if code, _, stderr := runCLI("-addr", addr, "put", "empty", ""); code != 0 {
				t.Fatalf("put: exit %d: %s", code, stderr)
			}
			code, stdout, stderr = runCLI("-addr", addr, "get", "empty")
			if code != 0 || stdout != "\n" || strings.Contains(stderr, "not found") {
				t.Errorf("get of a key set to \"\": exit %d, stdout %q, stderr %q; want 0 and an empty line", code, stdout, stderr)
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
// store over a directory it cannot create or a file that is not a kv store.
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
		{"directory is a file", isFile, "not a directory"},
		{"parent is a file", filepath.Join(isFile, "sub"), "kv: cannot create the data directory: mkdir " + isFile + ": not a directory"},
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

// TestDataDirCreated pins that kv server -data creates a missing directory,
// parents included, readable by its owner only.
func TestDataDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	addr := startServer(t, "-data", dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != dataDirMode {
		t.Fatalf("%s: mode %v, want a directory with %v", dir, fi.Mode(), os.FileMode(dataDirMode))
	}
	if code, _, stderr := runCLI("-addr", addr, "put", "k", "v"); code != 0 || stderr != "" {
		t.Fatalf("put: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, dataFile)); err != nil {
		t.Fatal(err)
	}
}

// TestClientStartsBeforeServer pins that every command waits for a server
// that is not up yet, within its -timeout.
func TestClientStartsBeforeServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there until the server starts

	type result struct {
		args           []string
		code           int
		stdout, stderr string
	}
	cmds := [][]string{
		{"put", "p", "v"},
		{"append", "a", "x"},
		{"get", "g"},
	}
	results := make(chan result, len(cmds))
	for _, args := range cmds {
		go func() {
			code, stdout, stderr := runCLI(append([]string{"-addr", addr, "-timeout", "10s"}, args...)...)
			results <- result{args, code, stdout, stderr}
		}()
	}
	time.Sleep(500 * time.Millisecond) // the clients are dialling a closed port
	startServer(t, "-addr", addr, "-data", t.TempDir())
	want := map[string]struct {
		code   int
		stdout string
	}{
		"put":    {0, "OK\n"},
		"append": {0, "\n"},
		"get":    {exitNotFound, ""},
	}
	for range cmds {
		select {
		case r := <-results:
			w := want[r.args[0]]
			if r.code != w.code || r.stdout != w.stdout {
				t.Errorf("kv %q started before its server: exit %d, stdout %q, stderr %q; want %d and %q",
					r.args, r.code, r.stdout, r.stderr, w.code, w.stdout)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a client hangs")
		}
	}
}

// TestClientRetriesARefusalThatMayPass pins that a call a server refused
// without running it, for a reason of the server's that may pass (with
// -pg: its database is down or restarting), is sent again until -timeout:
// a command rides over a database restart as over a server restart. A
// refusal for a reason of the call's own is not retried (see
// TestCallFailureSaysNotExecuted and TestUsageErrors).
func TestClientRetriesARefusalThatMayPass(t *testing.T) {
	var refused atomic.Int32
	testServerOptions = []rpc.Option{rpc.WithServerInterceptor(func(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
		if strings.HasPrefix(call.ServiceMethod, kvservice.ServiceName+".") && refused.Add(1) <= 3 {
			return fmt.Errorf("test store: database unreachable: %w", rpc.ErrRejected)
		}
		return next(ctx, call)
	})}
	addr := startServer(t, "-data", t.TempDir())
	testServerOptions = nil

	code, stdout, stderr := runCLI("-addr", addr, "-timeout", "5s", "append", "k", "v")
	if code != 0 || stdout != "\n" {
		t.Fatalf("append: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "append refused, not executed") || !strings.Contains(stderr, "database unreachable") {
		t.Errorf("stderr %q, want a note that the append was refused and is being sent again", stderr)
	}
	if n := refused.Load(); n < 4 {
		t.Errorf("%d requests reached the interceptor, want the 3 refused and more", n)
	}
	code, stdout, stderr = runCLI("-addr", addr, "get", "k")
	if code != 0 || stdout != "v\n" {
		t.Fatalf("get: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Refused for good: the command gives up with "did not execute" when
	// -timeout ends.
	refused.Store(-1 << 20)
	start := time.Now()
	code, _, stderr = runCLI("-addr", addr, "-timeout", "500ms", "get", "k")
	if code != exitFailed || !strings.Contains(stderr, "kv: get did not execute") {
		t.Fatalf("get refused until -timeout: exit %d, stderr %q", code, stderr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("get refused until a 500ms -timeout took %v", d)
	}
}
