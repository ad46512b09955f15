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
// /_goRPC_): the command connects with HTTP CONNECT first.
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

Each command takes:
  -addr host:port   the server (required)
  -timeout d        bound on the dial and the call together (default 5s)
  -http path        reach RPC over HTTP at path (HandleHTTP; net/rpc's is /_goRPC_)

Exit status: 0 success, 1 no answer or an error answer, 2 usage error.
`

const shortUsage = "usage: semrpc health|list|call -addr host:port [-timeout d] [Service.Method ['{json}']]; semrpc -h for more\n"

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
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "semrpc %s: %v\n%s", cmd, err, shortUsage)
		return exitUsage
	}
	var err error
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
	if err == nil {
		s := session{addr: *addr, timeout: *timeout, httpPath: *httpPath, out: stdout}
		switch cmd {
		case "health":
			err = s.health(fs.Args())
		case "list":
			err = s.list(fs.Args())
		case "call":
			err = s.call(fs.Args())
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

// session is one command's connection settings.
type session struct {
	addr     string
	timeout  time.Duration
	httpPath string // "": the RPC port itself
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
	nc, err := net.DialTimeout("tcp", s.addr, s.timeout)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", s.addr, err)
	}
	nc.SetDeadline(deadline)
	if s.httpPath != "" {
		if err := httpConnect(nc, s.httpPath); err != nil {
			nc.Close()
			return fmt.Errorf("%s: CONNECT %s%s: %w", method, s.addr, s.httpPath, err)
		}
	}
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
		case strings.Contains(string(se), "can't find") && strings.HasPrefix(method, "_semrpc."):
			msg += " (the server has introspection off: rpc.WithIntrospection(false))"
		case strings.Contains(string(se), "can't find"):
			msg += fmt.Sprintf(" (semrpc list -addr %s shows its methods)", s.addr)
		}
		return errors.New(msg)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: no answer from %s within %v (a semrpc server with its JSON codec on answers at once; a call that timed out may have run)", method, s.addr, s.timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, netrpc.ErrShutdown):
		return fmt.Errorf("%s: %s closed the connection without answering: not a semrpc server with its JSON codec on, or the request was over its message limit", method, s.addr)
	default:
		return fmt.Errorf("%s: %v", method, err)
	}
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
