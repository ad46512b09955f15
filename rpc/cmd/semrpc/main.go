// Command semrpc asks a semrpc server about itself and calls its methods,
// over the JSON-RPC codec that a semrpc server's Serve answers on its gob
// port (a connection that opens as a JSON object is JSON-RPC 1.0, as
// net/rpc/jsonrpc speaks it).
//
// Usage:
//
//	semrpc health -addr host:port
//	semrpc list   -addr host:port
//	semrpc call   -addr host:port Service.Method ['{json arguments}']
//
// health prints the answer of the built-in _semrpc.Health; list prints
// every method with its argument and reply types and a JSON template of
// its arguments (_semrpc.Methods); call sends the JSON arguments (default
// {}) and prints the JSON reply. Each command takes -timeout (default 5s),
// which bounds the dial and the call together, and -http path for a
// server offering RPC over HTTP (rpc.Server.HandleHTTP; net/rpc's path is
// /_goRPC_): the command connects with HTTP CONNECT first. Flags may come
// before or after the method and its arguments.
//
// For a server that listens with TLS (rpc.ListenTLS), -tls connects over
// TLS, verifying the server against the system's roots; -ca file verifies
// it against the PEM certificates in file instead (self-signed ones), and
// -cert file -key file present a client certificate (mutual TLS).
// -server-name sets the name the server's certificate must carry (default:
// the host of -addr). Any of them implies -tls.
//
// Calls through the JSON codec are plain calls: the server runs each
// request once, with no at-most-once table; a call that times out may have
// run.
//
// The exit status is 0 on success, 1 when the server could not be reached,
// did not answer, or answered with an error, and 2 for a usage error.
// The server needs its JSON codec on (rpc.WithJSONCodec, the default) and,
// for health and list, its introspection on (rpc.WithIntrospection, the
// default).
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	netrpc "net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  semrpc health -addr host:port                              the server's health
  semrpc list   -addr host:port                              its services and methods
  semrpc call   -addr host:port Service.Method ['{json}']    call a method, print the JSON reply

Each command takes, before or after its arguments:
  -addr host:port   the server (required)
  -timeout d        bound on the dial and the call together (default 5s)
  -http path        reach RPC over HTTP at path (HandleHTTP; net/rpc's is /_goRPC_)
  -tls              connect with TLS, verifying the server against the system's roots
  -ca file          verify the server against the PEM certificates in file (implies -tls)
  -cert file        present this PEM client certificate, with -key (mutual TLS; implies -tls)
  -key file         the client certificate's PEM private key
  -server-name n    the name the server's certificate must carry (default: the host of -addr)

Exit status: 0 success, 1 no answer or an error answer, 2 usage error.
`

const shortUsage = "usage: semrpc health|list|call -addr host:port [-timeout d] [-http path] [-tls] [-ca file] [Service.Method ['{json}']]; semrpc -h for more\n"

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "health", "list", "call":
	default:
		fmt.Fprintf(stderr, "semrpc: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("semrpc "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "", "server address, host:port")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the dial and the call together")
	httpPath := fs.String("http", "", "reach RPC over HTTP at this path")
	useTLS := fs.Bool("tls", false, "connect with TLS")
	caFile := fs.String("ca", "", "PEM certificates that sign the server's")
	certFile := fs.String("cert", "", "PEM client certificate")
	keyFile := fs.String("key", "", "PEM key of the client certificate")
	serverName := fs.String("server-name", "", "name the server's certificate must carry")
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "semrpc %s: %v\n%s", cmd, err, shortUsage)
		return exitUsage
	}
	switch {
	case *addr == "":
		err = &usageError{"-addr is required"}
	case *httpPath != "" && !strings.HasPrefix(*httpPath, "/"):
		err = &usageError{fmt.Sprintf("-http %q must start with /", *httpPath)}
	case *timeout <= 0:
		err = &usageError{fmt.Sprintf("-timeout must be positive, not %v", *timeout)}
	default:
		if _, _, perr := net.SplitHostPort(*addr); perr != nil {
			err = &usageError{fmt.Sprintf("-addr %q is not host:port: %v", *addr, perr)}
		}
	}
	var tlsCfg *tls.Config
	if err == nil && (*useTLS || *caFile != "" || *certFile != "" || *keyFile != "" || *serverName != "") {
		tlsCfg, err = tlsConfig(*addr, *caFile, *certFile, *keyFile, *serverName)
	}
	if err == nil {
		s := session{addr: *addr, timeout: *timeout, httpPath: *httpPath, tls: tlsCfg, out: stdout}
		switch cmd {
		case "health":
			err = s.health(positional)
		case "list":
			err = s.list(positional)
		case "call":
			err = s.call(positional)
		}
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "semrpc %s: %v\n%s", cmd, err, shortUsage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "semrpc %s: %v\n", cmd, err)
		return exitFail
	}
}

// parseInterleaved parses fs's flags wherever they stand among the
// positional arguments, which it returns in order. An argument that is not
// one of fs's flags (a negative number as JSON) stays positional, and so
// does everything after "--".
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		for len(rest) > 0 && !isFlag(fs, rest[0]) {
			positional = append(positional, rest[0])
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return positional, nil
		}
		args = rest
	}
}

// isFlag reports whether arg names one of fs's flags ("-addr", "--addr=x"),
// or asks for help.
func isFlag(fs *flag.FlagSet, arg string) bool {
	name, ok := strings.CutPrefix(arg, "-")
	if !ok {
		return false
	}
	name = strings.TrimPrefix(name, "-")
	name, _, _ = strings.Cut(name, "=")
	return fs.Lookup(name) != nil || name == "h" || name == "help"
}

// tlsConfig builds the client's TLS configuration from the flags. A file
// that cannot be read or parsed is a usage error.
func tlsConfig(addr, caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("-ca: %v", err)}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &usageError{fmt.Sprintf("-ca %s holds no PEM certificate", caFile)}
		}
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("-cert/-key: %v", err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, &usageError{"-cert and -key go together"}
	}
	return cfg, nil
}

// session is one command's connection settings.
type session struct {
	addr     string
	timeout  time.Duration
	httpPath string      // "": the RPC port itself
	tls      *tls.Config // nil: no TLS
	out      io.Writer
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Sprintf("unexpected arguments %q", args)}
	}
	return nil
}

func (s session) health(args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	var h rpc.HealthReply
	if err := s.invoke(rpc.HealthMethod, rpc.HealthArgs{}, &h); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "%s epoch=%d durable=%t services=%d connections=%d\n",
		h.Status, h.Epoch, h.Durable, h.Services, h.Connections)
	if h.Status != rpc.HealthServing {
		return fmt.Errorf("%s is %s", s.addr, h.Status)
	}
	return nil
}

func (s session) list(args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	var r rpc.MethodsReply
	if err := s.invoke(rpc.MethodsMethod, rpc.MethodsArgs{}, &r); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tARGS\tREPLY\tJSON ARGS")
	for _, svc := range r.Services {
		for _, m := range svc.Methods {
			example := m.ArgsJSON
			if example == "" {
				example = "(no JSON form)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Args, m.Reply, example)
		}
	}
	return tw.Flush()
}

func (s session) call(args []string) error {
	if len(args) == 0 || len(args) > 2 {
		return &usageError{"call takes Service.Method and, optionally, the arguments as one JSON value"}
	}
	method, params := args[0], "{}"
	if len(args) == 2 {
		params = args[1]
	}
	if dot := strings.LastIndex(method, "."); dot <= 0 || dot == len(method)-1 {
		return &usageError{fmt.Sprintf("%q is not Service.Method", method)}
	}
	var probe any
	if err := json.Unmarshal([]byte(params), &probe); err != nil {
		return &usageError{fmt.Sprintf("the arguments are not valid JSON: %v", err)}
	}
	var reply json.RawMessage
	if err := s.invoke(method, json.RawMessage(params), &reply); err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, reply, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(reply)
	}
	pretty.WriteByte('\n')
	_, err := s.out.Write(pretty.Bytes())
	return err
}

// invoke makes one JSON-RPC call on a fresh connection and explains its
// failure, if any.
func (s session) invoke(method string, args, reply any) error {
	deadline := time.Now().Add(s.timeout)
	var nc net.Conn
	nc, err := net.DialTimeout("tcp", s.addr, s.timeout)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", s.addr, err)
	}
	nc.SetDeadline(deadline)
	if s.tls != nil {
		tc := tls.Client(nc, s.tls)
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return fmt.Errorf("TLS handshake with %s: %w%s", s.addr, err, tlsHint(err))
		}
		nc = tc
	}
	if s.httpPath != "" {
		if err := httpConnect(nc, s.httpPath); err != nil {
			nc.Close()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("%s: CONNECT %s%s: no HTTP answer within %v: does the server serve RPC over HTTP (HandleHTTP)? without -http the command speaks to the RPC port itself", method, s.addr, s.httpPath, s.timeout)
			}
			if s.tls == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return fmt.Errorf("%s: CONNECT %s%s: %w (the server hung up: if it serves HTTPS, add -tls or -ca)", method, s.addr, s.httpPath, err)
			}
			return fmt.Errorf("%s: CONNECT %s%s: %w", method, s.addr, s.httpPath, err)
		}
	}
	rec := &firstBytes{Conn: nc}
	nc = rec
	c := netrpc.NewClientWithCodec(jsonrpc.NewClientCodec(nc))
	defer c.Close()
	err = c.Call(method, args, reply)
	var se netrpc.ServerError
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		msg := fmt.Sprintf("%s: the server answered: %s", method, se)
		switch {
		case strings.Contains(string(se), "takes TLS connections only"):
			msg += " (use -tls, or -ca with the server's CA)"
		case strings.Contains(string(se), "can't find") && strings.HasPrefix(method, "_semrpc."):
			msg += " (the server has introspection off: rpc.WithIntrospection(false))"
		case strings.Contains(string(se), "can't find"):
			msg += fmt.Sprintf(" (semrpc list -addr %s shows its methods)", s.addr)
		}
		return errors.New(msg)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: no answer from %s within %v (a semrpc server with its JSON codec on answers at once; a call that timed out may have run)", method, s.addr, s.timeout)
	case bytes.HasPrefix(rec.first, []byte("HTTP/")):
		hint := "add -http with its RPC path, net/rpc's is /_goRPC_"
		if s.httpPath != "" {
			hint = "the server answered the CONNECT, then spoke HTTP again"
		}
		return fmt.Errorf("%s: %s answered in HTTP, not JSON-RPC (%s)", method, s.addr, hint)
	case bytes.HasPrefix(rec.first, []byte{0x15, 0x03}) && s.tls == nil:
		return fmt.Errorf("%s: %s answered with a TLS alert: it listens with TLS (use -tls, or -ca with the server's CA)", method, s.addr)
	case len(rec.first) > 0 && isJSONSyntaxError(err):
		return fmt.Errorf("%s: %s answered %q…, which is not JSON-RPC: not a semrpc server, or not its RPC port", method, s.addr, rec.first)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, netrpc.ErrShutdown):
		return fmt.Errorf("%s: %s closed the connection without answering, and the call may have run: a semrpc server does so when it stops or crashes, when a request is over its message limit, or when its JSON codec is off", method, s.addr)
	case s.tls != nil && isTLSAlert(err, "certificate"):
		return fmt.Errorf("%s: %v (the server wants a client certificate that it trusts: -cert and -key)", method, err)
	default:
		return fmt.Errorf("%s: %v", method, err)
	}
}

// isTLSAlert reports whether err is an alert from the TLS peer whose text
// holds word.
func isTLSAlert(err error, word string) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && strings.Contains(oe.Err.Error(), word)
}

// tlsHint suggests a cause for a failed handshake that is likely a server
// without TLS: it closed the connection, or refused TLS outright.
func tlsHint(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isTLSAlert(err, "handshake failure") {
		return " (does the server listen with TLS? without -tls and -ca the command connects without it)"
	}
	return ""
}

func isJSONSyntaxError(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || strings.Contains(err.Error(), "invalid character")
}

// firstBytes keeps the first bytes read from a connection, to say what
// answered when the answer is not JSON-RPC.
type firstBytes struct {
	net.Conn
	first []byte
}

func (f *firstBytes) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	if room := 16 - len(f.first); room > 0 {
		f.first = append(f.first, p[:min(n, room)]...)
	}
	return n, err
}

// httpConnect asks an HTTP server for an RPC connection, as net/rpc's
// DialHTTPPath does, reading its answer a byte at a time so that nothing
// after it is consumed.
func httpConnect(nc net.Conn, path string) error {
	if _, err := io.WriteString(nc, "CONNECT "+path+" HTTP/1.0\n\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(oneByte{nc}, 16), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	resp.Body.Close()
	if resp.Status != "200 Connected to Go RPC" {
		return fmt.Errorf("answered %q: no RPC at that path", resp.Status)
	}
	return nil
}

// oneByte reads at most one byte per call.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
