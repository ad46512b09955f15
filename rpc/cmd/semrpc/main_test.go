package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"go.uber.org/goleak"
)

// The test binary doubles as the server process: with serverEnv set it
// serves Calc on a loopback port, prints the address, and stops when its
// standard input closes.
const serverEnv = "SEMRPC_CLI_TEST_SERVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(serverEnv); mode != "" {
		os.Exit(serveForTest(mode))
	}
	goleak.VerifyTestMain(m)
}

// Calc is the service the test server offers.
type Calc struct{}

// Pair is Calc's argument.
type Pair struct{ A, B int }

func (Calc) Add(p Pair, sum *int) error {
	*sum = p.A + p.B
	return nil
}

func (Calc) Div(p Pair, quo *int) error {
	if p.B == 0 {
		return errors.New("divide by zero")
	}
	*quo = p.A / p.B
	return nil
}

func serveForTest(mode string) int {
	var opts []rpc.Option
	switch mode {
	case "nojson":
		opts = append(opts, rpc.WithJSONCodec(false))
	case "nointro":
		opts = append(opts, rpc.WithIntrospection(false))
	}
	srv := rpc.NewServer(opts...)
	if err := srv.Register(Calc{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode == "http" {
		srv.HandleHTTP(rpc.DefaultRPCPath, rpc.DefaultDebugPath)
		go http.Serve(l, nil)
	} else {
		go srv.Serve(l)
	}
	fmt.Println(l.Addr())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	l.Close()
	return 0
}

// startServerProcess runs the test binary as a server in its own process.
func startServerProcess(t *testing.T, mode string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("server process: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the server's address: %v", err)
	}
	return strings.TrimSpace(line)
}

// buildCLI builds this command once per test run.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "semrpc")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// The built command against a server in another process.
func TestCLIAgainstServerProcess(t *testing.T) {
	bin := buildCLI(t)
	addr := startServerProcess(t, "default")
	noJSON := startServerProcess(t, "nojson")
	overHTTP := startServerProcess(t, "http")
	noIntro := startServerProcess(t, "nointro")
	down := closedPort(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr []string
	}{
		{"health", []string{"health", "-addr", addr}, 0, []string{"SERVING", "services=1"}, nil},
		{"list", []string{"list", "-addr", addr}, 0,
			[]string{"METHOD", "Calc.Add", "main.Pair", "*int", `{"A":0,"B":0}`, "Calc.Div"}, nil},
		{"call", []string{"call", "-addr", addr, "Calc.Add", `{"A":2,"B":40}`}, 0, []string{"42"}, nil},
		{"call with default arguments", []string{"call", "-addr", addr, "Calc.Add"}, 0, []string{"0"}, nil},
		{"application error", []string{"call", "-addr", addr, "Calc.Div", `{"A":1}`}, 1, nil,
			[]string{"Calc.Div: the server answered: divide by zero"}},
		{"unknown method", []string{"call", "-addr", addr, "Calc.Mul", `{}`}, 1, nil,
			[]string{"can't find method Calc.Mul", "semrpc list -addr"}},
		{"arguments of the wrong type", []string{"call", "-addr", addr, "Calc.Add", `[1,2]`}, 1, nil,
			[]string{"decoding arguments of Calc.Add"}},
		{"bad JSON", []string{"call", "-addr", addr, "Calc.Add", `{"A":`}, 2, nil,
			[]string{"not valid JSON"}},
		{"not Service.Method", []string{"call", "-addr", addr, "Add"}, 2, nil, []string{`"Add" is not Service.Method`}},
		{"missing -addr", []string{"health"}, 2, nil, []string{"-addr is required"}},
		{"bad -addr", []string{"list", "-addr", "localhost"}, 2, nil, []string{"not host:port"}},
		{"unknown flag", []string{"list", "-bogus"}, 2, nil, []string{"flag provided but not defined: -bogus"}},
		{"unknown command", []string{"ping"}, 2, nil, []string{`unknown command "ping"`}},
		{"help", []string{"-h"}, 0, []string{"semrpc call"}, nil},
		{"over HTTP", []string{"call", "-addr", overHTTP, "-http", "/_goRPC_", "Calc.Add", `{"A":1,"B":1}`}, 0, []string{"2"}, nil},
		{"health over HTTP", []string{"health", "-addr", overHTTP, "-http", "/_goRPC_"}, 0, []string{"SERVING"}, nil},
		{"HTTP path without RPC", []string{"health", "-addr", overHTTP, "-http", "/nothing"}, 1, nil,
			[]string{`answered "404 Not Found": no RPC at that path`}},
		{"bad -http", []string{"list", "-addr", addr, "-http", "x"}, 2, nil, []string{`-http "x" must start with /`}},
		{"introspection off", []string{"list", "-addr", noIntro}, 1, nil, []string{"introspection off"}},
		{"introspection off, calls still work", []string{"call", "-addr", noIntro, "Calc.Add", `{"A":1,"B":2}`}, 0, []string{"3"}, nil},
		{"unreachable", []string{"health", "-addr", down}, 1, nil, []string{"cannot reach " + down}},
		{"JSON codec off", []string{"health", "-addr", noJSON, "-timeout", "300ms"}, 1, nil,
			[]string{"no answer from " + noJSON + " within 300ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, &stdout)
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, &stderr)
				}
			}
		})
	}
}
