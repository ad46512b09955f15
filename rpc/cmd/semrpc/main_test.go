package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
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

// Hang answers only when its caller's deadline ends it.
func (Calc) Hang(ctx context.Context, p Pair, sum *int) error {
	<-ctx.Done()
	return ctx.Err()
}

// CrashOnce ends its server process the first time it is called (the file
// named by crashEnv does not exist yet) without answering, and adds the
// pair after that.
func (Calc) CrashOnce(p Pair, sum *int) error {
	marker := os.Getenv(crashEnv)
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(marker, nil, 0o600); err == nil {
			os.Exit(0)
		}
	}
	*sum = p.A + p.B
	return nil
}

// Environment of the test server: crashEnv names CrashOnce's marker file,
// addrEnv the address to listen on (default: any loopback port).
const (
	crashEnv = "SEMRPC_CLI_TEST_CRASH"
	addrEnv  = "SEMRPC_CLI_TEST_ADDR"
)

// testToken is what the "token" server wants in the authorization metadata.
const testToken = "Bearer s3cret"

// checkToken refuses, not executed, every request without testToken, as
// examples/quote's server interceptor does.
func checkToken(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
	md, _ := rpc.FromIncomingContext(ctx)
	if md.First("authorization") != testToken {
		return fmt.Errorf("%s refused: missing or unknown bearer token: %w", call.ServiceMethod, rpc.ErrRejected)
	}
	return next(ctx, call)
}

func serveForTest(mode string) int {
	var opts []rpc.Option
	switch mode {
	case "nojson":
		opts = append(opts, rpc.WithJSONCodec(false))
	case "nointro":
		opts = append(opts, rpc.WithIntrospection(false))
	case "token":
		opts = append(opts, rpc.WithServerInterceptor(checkToken))
	}
	srv := rpc.NewServer(opts...)
	if err := srv.Register(Calc{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr := os.Getenv(addrEnv)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	switch mode {
	case "tls", "mtls", "https":
		l, err = listenTLSForTest(os.Getenv(pkiEnv), mode == "mtls")
	default:
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode == "http" || mode == "https" {
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

// pkiEnv names the directory of the TLS test files (see writePKI).
const pkiEnv = "SEMRPC_CLI_TEST_PKI"

// listenTLSForTest listens with the server certificate in dir; with
// mutual, it requires a client certificate signed by the test CA.
func listenTLSForTest(dir string, mutual bool) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if mutual {
		pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = x509.NewCertPool()
		cfg.ClientCAs.AppendCertsFromPEM(pem)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return rpc.ListenTLS("tcp", "127.0.0.1:0", cfg)
}

// writePKI writes a test CA (ca.pem), a server certificate for 127.0.0.1
// (server.pem, server.key), a client certificate (client.pem, client.key)
// and a second CA (other-ca.pem) into a new directory, and returns it.
func writePKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey) {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	ca, caKey := newCA("ca")
	newCA("other-ca")
	for i, name := range []string{"server", "client"} {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if name == "server" {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".key", "PRIVATE KEY", kder)
	}
	return dir
}

// serverProc is a test server in its own process.
type serverProc struct {
	addr string
	done chan struct{} // closed when the process has ended
	err  error         // how it ended; set before done is closed
}

// startServerProc runs the test binary as a server in its own process; it
// is stopped (its stdin closed) when the test ends, if it has not ended.
func startServerProc(t *testing.T, mode string, env ...string) *serverProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), serverEnv+"="+mode), env...)
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
	p := &serverProc{done: make(chan struct{})}
	line, rerr := bufio.NewReader(stdout).ReadString('\n')
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
			t.Errorf("server process did not stop within 10s of its stdin closing")
		}
		if p.err != nil {
			t.Errorf("server process: %v", p.err)
		}
	})
	if rerr != nil {
		t.Fatalf("reading the server's address: %v", rerr)
	}
	p.addr = strings.TrimSpace(line)
	return p
}

// startServerProcess runs a server process and returns its address.
func startServerProcess(t *testing.T, mode string, env ...string) string {
	t.Helper()
	return startServerProc(t, mode, env...).addr
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

// TestCLIWaitNamesTheUsersPolicy: with -wait and no -semantics, a server
// that never comes up fails the command as a no-retry call (what the user
// asked for), not as the at-least-once policy the command waits with.
func TestCLIWaitNamesTheUsersPolicy(t *testing.T) {
	bin := buildCLI(t)
	code, _, stderr := runCLI(t, bin, "health", "-addr", closedPort(t), "-wait", "300ms")
	if code != exitNotExecuted || !strings.Contains(stderr, "no-retry call") || strings.Contains(stderr, "at-least-once") {
		t.Errorf("exit status %d, stderr:\n%s\nwant %d, naming the call no-retry and not at-least-once", code, stderr, exitNotExecuted)
	}
}

// The built command against a server in another process.
func TestCLIAgainstServerProcess(t *testing.T) {
	bin := buildCLI(t)
	addr := startServerProcess(t, "default")
	noJSON := startServerProcess(t, "nojson")
	overHTTP := startServerProcess(t, "http")
	noIntro := startServerProcess(t, "nointro")
	down := closedPort(t)
	pki := writePKI(t)
	overTLS := startServerProcess(t, "tls", pkiEnv+"="+pki)
	mutualTLS := startServerProcess(t, "mtls", pkiEnv+"="+pki)
	overHTTPS := startServerProcess(t, "https", pkiEnv+"="+pki)
	file := func(name string) string { return filepath.Join(pki, name) }
	token := startServerProcess(t, "token")
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
		{"call at-most-once", []string{"call", "-addr", addr, "-semantics", "at-most-once", "Calc.Add", `{"A":1,"B":2}`}, 0, []string{"3"}, nil},
		{"call at-least-once", []string{"call", "-addr", addr, "-semantics", "at-least-once", "Calc.Add", `{"A":1,"B":3}`}, 0, []string{"4"}, nil},
		{"exactly-once on a server that is not durable", []string{"call", "-addr", addr, "-semantics", "exactly-once", "Calc.Add", `{}`}, 3, nil,
			[]string{"no durable completion records", "not executed"}},
		{"application error", []string{"call", "-addr", addr, "Calc.Div", `{"A":1}`}, 1, nil,
			[]string{"Calc.Div: divide by zero"}},
		{"misspelled field", []string{"call", "-addr", addr, "Calc.Add", `{"A":1,"C":2}`}, 2, nil,
			[]string{`unknown field "C"`, "Calc.Add"}},
		{"misspelled field, at-most-once", []string{"call", "-addr", addr, "-semantics", "at-most-once", "Calc.Add", `{"a":1,"Bee":2}`}, 2, nil,
			[]string{`unknown field "Bee"`}},
		{"arguments of the wrong type", []string{"call", "-addr", addr, "Calc.Add", `[1,2]`}, 2, nil,
			[]string{"do not fit its argument type main.Pair"}},
		{"negative number as arguments", []string{"call", "-addr", addr, "Calc.Add", "-1"}, 2, nil,
			[]string{"do not fit its argument type main.Pair"}},
		{"unknown method", []string{"call", "-addr", addr, "Calc.Mul", `{}`}, 3, nil,
			[]string{`can't find method "Calc.Mul"`, "semrpc list -addr"}},
		{"bad JSON", []string{"call", "-addr", addr, "Calc.Add", `{"A":`}, 2, nil,
			[]string{"not valid JSON"}},
		{"not Service.Method", []string{"call", "-addr", addr, "Add"}, 2, nil, []string{`"Add" is not Service.Method`}},
		{"missing -addr", []string{"health"}, 2, nil, []string{"-addr is required"}},
		{"bad -addr", []string{"list", "-addr", "localhost"}, 2, nil, []string{"not host:port"}},
		{"unknown flag", []string{"list", "-bogus"}, 2, nil, []string{"flag provided but not defined: -bogus"}},
		{"unknown flag after the arguments", []string{"call", "-addr", addr, "Calc.Add", `{"A":1}`, "-bogus"}, 2, nil,
			[]string{"flag provided but not defined: -bogus"}},
		{"misspelt flag after the arguments", []string{"call", "Calc.Add", `{"A":1}`, "-addr", addr, "--semantic=at-most-once"}, 2, nil,
			[]string{"flag provided but not defined: -semantic\n"}},
		{"unknown command", []string{"ping"}, 2, nil, []string{`unknown command "ping"`}},
		{"flags before the command", []string{"-addr", addr, "health"}, 2, nil,
			[]string{"the command comes first, then its flags: semrpc health -addr ..."}},
		{"bad -semantics", []string{"call", "-addr", addr, "-semantics", "twice", "Calc.Add"}, 2, nil,
			[]string{`-semantics "twice"`, "at-least-once"}},
		{"bad -md", []string{"health", "-addr", addr, "-md", "authorization"}, 2, nil, []string{`"authorization" is not key=value`}},
		{"bad -md key", []string{"health", "-addr", addr, "-md", "a b=c"}, 2, nil, []string{"key"}},
		{"negative -wait", []string{"health", "-addr", addr, "-wait", "-1s"}, 2, nil, []string{"-wait must not be negative"}},
		{"help", []string{"-h"}, 0, []string{"semrpc call", "-md key=value", "-wait d", "-semantics p",
			"0  success", "1  the method ran", "2  usage", "3  definitely not executed", "4  may have executed"}, nil},
		{"token server without a token", []string{"health", "-addr", token}, 3, nil,
			[]string{"missing or unknown bearer token", "not executed"}},
		{"token server, call without a token", []string{"call", "-addr", token, "Calc.Add", `{"A":1}`}, 3, nil,
			[]string{"missing or unknown bearer token"}},
		{"token server, wrong token", []string{"list", "-addr", token, "-md", "authorization=Bearer guess"}, 3, nil,
			[]string{"missing or unknown bearer token"}},
		{"token server with -md", []string{"health", "-addr", token, "-md", "authorization=" + testToken}, 0, []string{"SERVING"}, nil},
		{"token server, list with -md", []string{"list", "-addr", token, "-md", "authorization=" + testToken}, 0, []string{"Calc.Add"}, nil},
		{"token server, call with -md, at-most-once", []string{"call", "-addr", token, "-md", "Authorization=" + testToken,
			"-semantics", "at-most-once", "Calc.Add", `{"A":20,"B":22}`}, 0, []string{"42"}, nil},
		{"over HTTP", []string{"call", "-addr", overHTTP, "-http", "/_goRPC_", "Calc.Add", `{"A":1,"B":1}`}, 0, []string{"2"}, nil},
		{"health over HTTP", []string{"health", "-addr", overHTTP, "-http", "/_goRPC_"}, 0, []string{"SERVING"}, nil},
		{"HTTP path without RPC", []string{"health", "-addr", overHTTP, "-http", "/nothing"}, 3, nil,
			[]string{"404 Not Found"}},
		{"-http on a server without HTTP", []string{"health", "-addr", addr, "-http", "/_goRPC_", "-timeout", "500ms"}, 3, nil,
			[]string{"not executed", "no answer to HTTP CONNECT /_goRPC_", "leave out -http"}},
		{"bad -http", []string{"list", "-addr", addr, "-http", "x"}, 2, nil, []string{`-http "x" must start with /`}},
		{"introspection off", []string{"list", "-addr", noIntro}, 3, nil, []string{"introspection off"}},
		{"introspection off, calls still work", []string{"call", "-addr", noIntro, "Calc.Add", `{"A":1,"B":2}`}, 0, []string{"3"}, nil},
		{"JSON off, health still works", []string{"health", "-addr", noJSON}, 0, []string{"SERVING"}, nil},
		{"JSON off", []string{"call", "-addr", noJSON, "Calc.Add", `{"A":1,"B":2}`}, 3, nil, []string{"takes no JSON calls"}},
		{"unreachable", []string{"health", "-addr", down}, 3, nil, []string{down, "not executed", "-wait"}},
		{"unreachable, at-most-once", []string{"call", "-addr", down, "-semantics", "at-most-once", "-timeout", "300ms", "Calc.Add"}, 3, nil,
			[]string{down, "not executed"}},
		{"no answer in time", []string{"call", "-addr", addr, "-timeout", "300ms", "Calc.Hang", `{}`}, 4, nil,
			[]string{"may have executed"}},
		{"no answer in time, at-most-once", []string{"call", "-addr", addr, "-timeout", "300ms", "-semantics", "at-most-once", "Calc.Hang", `{}`}, 4, nil,
			[]string{"may have executed"}},
		{"flags after the arguments", []string{"call", "Calc.Add", `{"A":2,"B":3}`, "-addr", addr, "-timeout", "5s"}, 0, []string{"5"}, nil},
		{"flag name after --", []string{"call", "-addr", addr, "--", "Calc.Add", "-addr"}, 2, nil, []string{"not valid JSON"}},
		{"HTTP server without -http", []string{"health", "-addr", overHTTP}, 4, nil, []string{"-http with its RPC path"}},
		{"TLS with -ca", []string{"call", "-addr", overTLS, "-ca", file("ca.pem"), "Calc.Add", `{"A":1,"B":2}`}, 0, []string{"3"}, nil},
		{"TLS server without -tls", []string{"health", "-addr", overTLS}, 3, nil, []string{"TLS", "(-tls connects with TLS"}},
		{"TLS server signed by another CA", []string{"health", "-addr", overTLS, "-ca", file("other-ca.pem")}, 3, nil,
			[]string{"certificate signed by unknown authority", "(-ca file trusts"}},
		{"TLS server named otherwise", []string{"health", "-addr", overTLS, "-ca", file("ca.pem"), "-server-name", "example.com"}, 3, nil,
			[]string{"example.com"}},
		{"-tls on a server without TLS", []string{"health", "-addr", addr, "-tls"}, 3, nil, []string{"TLS"}},
		{"mutual TLS", []string{"health", "-addr", mutualTLS, "-ca", file("ca.pem"), "-cert", file("client.pem"), "-key", file("client.key")}, 0,
			[]string{"SERVING"}, nil},
		{"mutual TLS without a client certificate", []string{"health", "-addr", mutualTLS, "-ca", file("ca.pem")}, 3, nil,
			[]string{"certificate", "(-cert file -key file present one)"}},
		{"-cert without -key", []string{"health", "-addr", mutualTLS, "-ca", file("ca.pem"), "-cert", file("client.pem")}, 2, nil,
			[]string{"-cert and -key go together"}},
		{"missing -ca file", []string{"health", "-addr", overTLS, "-ca", file("nothing.pem")}, 2, nil,
			[]string{"-ca: open", "nothing.pem"}},
		{"-ca file without a certificate", []string{"health", "-addr", overTLS, "-ca", file("client.key")}, 2, nil,
			[]string{"holds no PEM certificate"}},
		{"over HTTPS", []string{"call", "-addr", overHTTPS, "-http", "/_goRPC_", "-ca", file("ca.pem"), "Calc.Add", `{"A":2,"B":2}`}, 0,
			[]string{"4"}, nil},
		{"HTTPS without -tls", []string{"health", "-addr", overHTTPS, "-http", "/_goRPC_"}, 3, nil, nil},
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
			t.Logf("exit %d; stderr: %s", code, &stderr)
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

func TestCLICallOnAConnectionClosedAfterTheRequestSaysItMayHaveRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.ReadFull(c, make([]byte, 64)) // some of the request, then a crash
		c.Close()
	}()
	defer func() {
		l.Close()
		<-done
	}()
	var stdout, stderr bytes.Buffer
	code := run([]string{"call", "-addr", l.Addr().String(), "Calc.Add", `{"A":1}`}, &stdout, &stderr)
	if code != exitMaybe || !strings.Contains(stderr.String(), "may have executed") {
		t.Fatalf("exit %d, stderr %q; want 4 and a warning that the call may have run", code, &stderr)
	}
}

// runCLI runs the built command, with a bound on its run, and returns its
// exit status, stdout and stderr.
func runCLI(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("semrpc %q did not end within 60s", args)
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// cliResult is the end of a command run in the background.
type cliResult struct {
	code           int
	stdout, stderr string
}

// startCLI runs the built command in the background; its result arrives on
// the channel.
func startCLI(t *testing.T, bin string, args ...string) <-chan cliResult {
	t.Helper()
	ch := make(chan cliResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		if ctx.Err() != nil {
			stderr.WriteString("(killed: it did not end within 60s)")
		}
		ch <- cliResult{code, stdout.String(), stderr.String()}
	}()
	return ch
}

func waitCLI(t *testing.T, ch <-chan cliResult) cliResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(90 * time.Second):
		t.Fatal("the command did not end")
	}
	return cliResult{}
}

// TestCLIWaitsForAServerStartedAfterIt: with -wait, a command started
// before its server (each in its own process) waits for it and succeeds,
// under every policy; without -wait it fails at once as not executed.
func TestCLIWaitsForAServerStartedAfterIt(t *testing.T) {
	bin := buildCLI(t)
	addr := closedPort(t)
	if code, _, stderr := runCLI(t, bin, "call", "-addr", addr, "Calc.Add", `{"A":1,"B":1}`); code != exitNotExecuted {
		t.Fatalf("without -wait: exit %d, want 3\n%s", code, stderr)
	}
	var results []<-chan cliResult
	for _, p := range []string{"no-retry", "at-least-once", "at-most-once"} {
		results = append(results, startCLI(t, bin, "call", "-addr", addr, "-wait", "30s", "-semantics", p, "Calc.Add", `{"A":40,"B":2}`))
	}
	results = append(results, startCLI(t, bin, "health", "-addr", addr, "-wait", "30s"))
	startServerProc(t, "default", addrEnv+"="+addr)
	for i, ch := range results {
		r := waitCLI(t, ch)
		want := "42"
		if i == 3 {
			want = "SERVING"
		}
		if r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("command %d: exit %d, stdout %q, stderr %q; want 0 and %s", i, r.code, r.stdout, r.stderr, want)
		}
	}
}

// TestCLIAcrossAServerRestart: the server process ends in the middle of a
// call (CrashOnce) and is started again on the same address. The exit
// status says what each policy knows: at-least-once sends the call again
// and succeeds (exit 0); no-retry and at-most-once (the restarted server,
// without a durable store, cannot tell whether the call ran) report that
// it may have run (exit 4). Each command waits for the restarted server
// with -wait.
func TestCLIAcrossAServerRestart(t *testing.T) {
	bin := buildCLI(t)
	for _, tt := range []struct {
		policy string
		code   int
		out    string // on stdout or stderr
	}{
		{"at-least-once", exitOK, "42"},
		{"no-retry", exitMaybe, "may have executed"},
		{"at-most-once", exitMaybe, "may have executed"},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			addr := closedPort(t)
			env := []string{addrEnv + "=" + addr, crashEnv + "=" + filepath.Join(t.TempDir(), "crashed")}
			first := startServerProc(t, "default", env...)
			ch := startCLI(t, bin, "call", "-addr", addr, "-wait", "30s", "-semantics", tt.policy, "Calc.CrashOnce", `{"A":40,"B":2}`)
			select {
			case <-first.done: // CrashOnce ended it
			case r := <-ch:
				t.Fatalf("the command ended before the server crashed: exit %d, %q %q", r.code, r.stdout, r.stderr)
			case <-time.After(60 * time.Second):
				t.Fatal("the server did not crash")
			}
			startServerProc(t, "default", env...)
			r := waitCLI(t, ch)
			t.Logf("exit %d; stdout %q; stderr %q", r.code, r.stdout, r.stderr)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", r.code, r.stdout, r.stderr, tt.code, tt.out)
			}
		})
	}
}
