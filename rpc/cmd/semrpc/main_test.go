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
	var l net.Listener
	var err error
	switch mode {
	case "tls", "mtls", "https":
		l, err = listenTLSForTest(os.Getenv(pkiEnv), mode == "mtls")
	default:
		l, err = net.Listen("tcp", "127.0.0.1:0")
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

// startServerProcess runs the test binary as a server in its own process.
func startServerProcess(t *testing.T, mode string, env ...string) string {
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
	pki := writePKI(t)
	overTLS := startServerProcess(t, "tls", pkiEnv+"="+pki)
	mutualTLS := startServerProcess(t, "mtls", pkiEnv+"="+pki)
	overHTTPS := startServerProcess(t, "https", pkiEnv+"="+pki)
	file := func(name string) string { return filepath.Join(pki, name) }
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
			[]string{`can't find method "Calc.Mul"`, "semrpc list -addr"}},
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
		{"flags after the arguments", []string{"call", "Calc.Add", `{"A":2,"B":3}`, "-addr", addr, "-timeout", "5s"}, 0, []string{"5"}, nil},
		{"negative number as arguments", []string{"call", "-addr", addr, "Calc.Add", "-1"}, 1, nil,
			[]string{"decoding arguments of Calc.Add"}},
		{"flag name after --", []string{"call", "-addr", addr, "--", "Calc.Add", "-addr"}, 2, nil, []string{"not valid JSON"}},
		{"HTTP server without -http", []string{"health", "-addr", overHTTP}, 1, nil,
			[]string{"answered in HTTP, not JSON-RPC", "-http"}},
		{"TLS with -ca", []string{"call", "-addr", overTLS, "-ca", file("ca.pem"), "Calc.Add", `{"A":1,"B":2}`}, 0, []string{"3"}, nil},
		{"TLS server without -tls", []string{"health", "-addr", overTLS}, 1, nil,
			[]string{"takes TLS connections only", "use -tls"}},
		{"TLS server signed by another CA", []string{"health", "-addr", overTLS, "-ca", file("other-ca.pem")}, 1, nil,
			[]string{"TLS handshake with " + overTLS, "certificate signed by unknown authority"}},
		{"TLS server named otherwise", []string{"health", "-addr", overTLS, "-ca", file("ca.pem"), "-server-name", "example.com"}, 1, nil,
			[]string{"TLS handshake with " + overTLS, "example.com"}},
		{"-tls on a server without TLS", []string{"health", "-addr", addr, "-tls"}, 1, nil,
			[]string{"TLS handshake with " + addr, "does the server listen with TLS?"}},
		{"mutual TLS", []string{"health", "-addr", mutualTLS, "-ca", file("ca.pem"), "-cert", file("client.pem"), "-key", file("client.key")}, 0,
			[]string{"SERVING"}, nil},
		{"mutual TLS without a client certificate", []string{"health", "-addr", mutualTLS, "-ca", file("ca.pem")}, 1, nil,
			[]string{"certificate required", "-cert and -key"}},
		{"-cert without -key", []string{"health", "-addr", mutualTLS, "-ca", file("ca.pem"), "-cert", file("client.pem")}, 2, nil,
			[]string{"-cert and -key go together"}},
		{"missing -ca file", []string{"health", "-addr", overTLS, "-ca", file("nothing.pem")}, 2, nil,
			[]string{"-ca: open", "nothing.pem"}},
		{"-ca file without a certificate", []string{"health", "-addr", overTLS, "-ca", file("client.key")}, 2, nil,
			[]string{"holds no PEM certificate"}},
		{"over HTTPS", []string{"call", "-addr", overHTTPS, "-http", "/_goRPC_", "-ca", file("ca.pem"), "Calc.Add", `{"A":2,"B":2}`}, 0,
			[]string{"4"}, nil},
		{"HTTPS without -tls", []string{"health", "-addr", overHTTPS, "-http", "/_goRPC_"}, 1, nil,
			[]string{"if it serves HTTPS, add -tls or -ca"}},
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
		bufio.NewReader(c).ReadString('}') // the whole request, then a crash
		c.Close()
	}()
	defer func() {
		l.Close()
		<-done
	}()
	var stdout, stderr bytes.Buffer
	code := run([]string{"call", "-addr", l.Addr().String(), "Calc.Add", `{"A":1}`}, &stdout, &stderr)
	if code != exitFail || !strings.Contains(stderr.String(), "the call may have run") {
		t.Fatalf("exit %d, stderr %q; want 1 and a warning that the call may have run", code, &stderr)
	}
}
