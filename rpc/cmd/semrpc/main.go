// Command semrpc asks a semrpc server about itself and calls its methods
// with JSON arguments, from a shell or a script.
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
// {}) and prints the JSON reply. The server decodes the arguments strictly:
// a field the argument type does not have is refused before the method runs
// (exit status 2, naming the field; names match ignoring case, as in
// encoding/json). Flags may come before or after the
// method and its arguments:
//
//	-addr host:port   the server (required)
//	-timeout d        bound on each command once the server is up (default 5s)
//	-wait d           wait up to d for a server that is not up yet or restarting (default 0: fail at once)
//	-semantics p      no-retry (the default), at-least-once, at-most-once or exactly-once
//	-md key=value     metadata sent with the request (repeatable), such as an authorization token
//	-http path        reach a server that offers RPC over HTTP at path (rpc.Server.HandleHTTP)
//	-tls, -ca file, -cert file, -key file, -server-name n   TLS (see -h)
//
// The command speaks semrpc's own wire to the server's ordinary port, and
// calls methods through the reserved method rpc.JSONCallMethod
// (rpc.Client.CallJSON), so every call has the policy -semantics gives:
// with at-most-once a retry after a lost connection is never run twice.
// -wait makes every policy wait for a server that refuses connections,
// which is always safe: a call that was not sent did not run. The command
// gives up after -wait plus -timeout.
//
// The exit status tells what became of the call:
//
//	0  success
//	1  the method ran and returned an error (its text is printed)
//	2  usage: bad flags, bad JSON, not Service.Method, or arguments that do not fit the method
//	3  definitely not executed: unreachable, refused (an unknown method, a missing token), not sent
//	4  may have executed: sent and no answer in time, or the connection was lost; or it ran and its reply could not be delivered
//
// The server needs its JSON calls on (rpc.WithJSONCodec, the default) for
// call and its introspection on (rpc.WithIntrospection, the default) for
// health and list.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
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
  -timeout d        bound on the command once the server is up (default 5s)
  -wait d           wait up to d for a server that is not up yet or restarting
                    (default 0: an unreachable server fails the command at once);
                    with no-retry, a call that was sent is still never sent twice
  -semantics p      the call's policy: no-retry (default: one attempt), at-least-once
                    (resent until answered: may run more than once), at-most-once
                    (resent, never run twice), exactly-once (at-most-once against a
                    durable server, surviving its restarts); each holds within one
                    command: running the command again is a new call
  -md key=value     metadata sent with the request, repeatable (-md authorization='Bearer t')
  -http path        reach RPC over HTTP at path (HandleHTTP; net/rpc's is /_goRPC_)
  -tls              connect with TLS, verifying the server against the system's roots
  -ca file          verify the server against the PEM certificates in file (implies -tls)
  -cert file        present this PEM client certificate, with -key (mutual TLS; implies -tls)
  -key file         the client certificate's PEM private key
  -server-name n    the name the server's certificate must carry (default: the host of -addr)

call decodes the JSON strictly on the server: a field the argument type does not have
is refused before the method runs (names match ignoring case, as in encoding/json).

Exit status:
  0  success
  1  the method ran and returned an error
  2  usage: bad flags, bad JSON, not Service.Method, arguments that do not fit the method
  3  definitely not executed: unreachable, refused (unknown method, missing token), not sent
  4  may have executed: no answer in time or the connection was lost (or it ran and its
     reply could not be delivered)
`

const shortUsage = "usage: semrpc health|list|call -addr host:port [-timeout d] [-wait d] [-semantics p] [-md k=v]... [-http path] [-tls] [-ca file] [Service.Method ['{json}']]; semrpc -h for more\n"

// Exit statuses: what became of the call.
const (
	exitOK          = 0
	exitApplication = 1 // the method ran and returned an error
	exitUsage       = 2
	exitNotExecuted = 3 // definitely did not run
	exitMaybe       = 4 // may have run
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// metadataFlag collects -md key=value flags.
type metadataFlag []string // key, value, key, value...

func (m *metadataFlag) String() string { return strings.Join(*m, " ") }

func (m *metadataFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", kv)
	}
	if err := rpc.Pairs(k, v).Validate(); err != nil {
		return err
	}
	*m = append(*m, k, v)
	return nil
}

// policies maps -semantics to the policies it names.
var policies = map[string]func() semantics.Policy{
	"no-retry":      semantics.NoRetry,
	"at-least-once": func() semantics.Policy { return semantics.AtLeastOnce() },
	"at-most-once":  func() semantics.Policy { return semantics.AtMostOnce() },
	"exactly-once":  func() semantics.Policy { return semantics.ExactlyOnce() },
}

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
		if looksLikeFlag(cmd) {
			for _, a := range rest {
				if a == "health" || a == "list" || a == "call" {
					fmt.Fprintf(stderr, "semrpc: the command comes first, then its flags: semrpc %s %s ...\n%s", a, cmd, shortUsage)
					return exitUsage
				}
			}
		}
		fmt.Fprintf(stderr, "semrpc: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("semrpc "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "", "server address, host:port")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the command once the server is up")
	wait := fs.Duration("wait", 0, "wait up to this long for a server that is not up yet or restarting")
	policy := fs.String("semantics", "no-retry", "no-retry, at-least-once, at-most-once or exactly-once")
	var md metadataFlag
	fs.Var(&md, "md", "metadata key=value, repeatable")
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
	case *wait < 0:
		err = &usageError{fmt.Sprintf("-wait must not be negative, not %v", *wait)}
	case policies[*policy] == nil:
		err = &usageError{fmt.Sprintf("-semantics %q: want no-retry, at-least-once, at-most-once or exactly-once", *policy)}
	default:
		if _, _, perr := net.SplitHostPort(*addr); perr != nil {
			err = &usageError{fmt.Sprintf("-addr %q is not host:port: %v", *addr, perr)}
		}
	}
	if err == nil && len(md) > 0 {
		if verr := rpc.Pairs(md...).Validate(); verr != nil {
			err = &usageError{fmt.Sprintf("-md: %v", verr)}
		}
	}
	var tlsCfg *tls.Config
	if err == nil && (*useTLS || *caFile != "" || *certFile != "" || *keyFile != "" || *serverName != "") {
		tlsCfg, err = tlsConfig(*addr, *caFile, *certFile, *keyFile, *serverName)
	}
	if err == nil {
		s := session{addr: *addr, timeout: *timeout, wait: *wait, policy: *policy, md: md,
			httpPath: *httpPath, tls: tlsCfg, out: stdout}
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
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "semrpc %s: %v\n%s", cmd, err, shortUsage)
		return exitUsage
	}
	if err != nil {
		// The error says what became of the call (not executed, may have
		// executed); the exit status says it to scripts.
		fmt.Fprintf(stderr, "semrpc %s: %v\n", cmd, err)
	}
	return exitStatus(err)
}

// exitStatus returns the exit status that tells what became of a call that
// ended with err.
func exitStatus(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, rpc.ErrBadArguments):
		return exitUsage
	case errors.Is(err, rpc.ErrApplication):
		return exitApplication
	case errors.Is(err, rpc.ErrNotExecuted):
		return exitNotExecuted
	}
	// Maybe executed, a reply that could not be delivered, or an error
	// that says nothing: the only safe reading is that it may have run.
	return exitMaybe
}

// parseInterleaved parses fs's flags wherever they stand among the
// positional arguments, which it returns in order. An argument that is not
// one of fs's flags (a negative number as JSON) stays positional, and so
// does everything after "--"; one shaped as a flag (a dash and a letter)
// is an unknown flag, wherever it stands.
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
			if looksLikeFlag(rest[0]) {
				// No JSON value starts so: a misspelt flag after the
				// arguments, refused as it would be before them.
				name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(rest[0], "-"), "-"), "=")
				return nil, fmt.Errorf("flag provided but not defined: -%s", name)
			}
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

// looksLikeFlag reports whether arg is shaped as a flag ("-x", "--name"):
// a dash and a letter, which neither a JSON value (a negative number) nor
// Service.Method can be.
func looksLikeFlag(arg string) bool {
	name := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	return len(name) < len(arg) && name != "" &&
		('a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z')
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
	wait     time.Duration
	policy   string
	md       metadataFlag
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

// connect returns a client for the server and the context of the command:
// its deadline is -wait plus -timeout away, and it carries the -md metadata.
func (s session) connect() (*rpc.Client, context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.wait+s.timeout)
	if len(s.md) > 0 {
		ctx = rpc.AppendToOutgoingContext(ctx, s.md...)
	}
	opts := []rpc.Option{rpc.WithSemantics(s.callPolicy()), rpc.WithDialTimeout(s.timeout),
		rpc.WithLogger(log.New(io.Discard, "", 0))}
	if s.tls != nil {
		opts = append(opts, rpc.WithTLS(s.tls))
	}
	var c *rpc.Client
	var err error
	if s.httpPath != "" {
		c, err = rpc.DialHTTPPath(ctx, "tcp", s.addr, s.httpPath, opts...)
	} else {
		c, err = rpc.Dial(ctx, "tcp", s.addr, opts...)
	}
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return c, ctx, cancel, nil
}

// callPolicy is the policy of -semantics, made to wait for the server up to
// the command's deadline when -wait is given: without -semantics, one
// attempt that reaches the server (attempts that were not sent are free
// and safe, MaxAttempts(1)).
func (s session) callPolicy() semantics.Policy {
	if s.policy == "no-retry" && s.wait > 0 {
		return semantics.AtLeastOnce(semantics.MaxAttempts(1), semantics.Backoff(50*time.Millisecond, time.Second))
	}
	return policies[s.policy]()
}

// invoke makes one call with the command's client and explains its
// failure, if any.
func (s session) invoke(method string, args, reply any) error {
	c, ctx, cancel, err := s.connect()
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	return s.explain(method, c.Call(ctx, method, args, reply))
}

// explain adds to err what the user can do about it.
func (s session) explain(method string, err error) error {
	var re *rpc.RejectedError
	var ge *semantics.GiveUpError
	if s.policy == "no-retry" && s.wait > 0 && errors.As(err, &ge) && ge.Policy == semantics.KindAtLeastOnce {
		// callPolicy ran the call as at-least-once with one attempt that
		// reaches the server; name it as the user asked for it.
		ge.Policy = semantics.KindNoRetry
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && re.Code == rpc.CodeUnknownMethod && strings.Contains(re.Msg, rpc.JSONCallMethod):
		return fmt.Errorf("%w (the server takes no JSON calls: rpc.WithJSONCodec(false))", err)
	case errors.As(err, &re) && re.Code == rpc.CodeUnknownMethod && strings.HasPrefix(method, "_semrpc."):
		return fmt.Errorf("%w (the server has introspection off: rpc.WithIntrospection(false))", err)
	case errors.As(err, &re) && re.Code == rpc.CodeUnknownMethod:
		return fmt.Errorf("%w (semrpc list -addr %s shows its methods)", err, s.addr)
	case errors.Is(err, rpc.ErrNotExecuted) && s.wait == 0 && isRefused(err):
		return fmt.Errorf("%w (-wait d waits for a server that is not up yet)", err)
	case errors.Is(err, rpc.ErrNotExecuted) && s.tls == nil && strings.Contains(err.Error(), "takes TLS connections only"):
		return fmt.Errorf("%w (-tls connects with TLS; -ca file also trusts the CA that signed the server's certificate)", err)
	case errors.Is(err, rpc.ErrNotExecuted) && s.tls != nil && strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return fmt.Errorf("%w (-ca file trusts the CA that signed the server's certificate)", err)
	case errors.Is(err, rpc.ErrNotExecuted) && s.tls != nil && strings.Contains(err.Error(), "requires a client certificate"):
		return fmt.Errorf("%w (-cert file -key file present one)", err)
	case errors.Is(err, rpc.ErrNotExecuted) && s.httpPath != "" && timedOut(err) && strings.Contains(err.Error(), "dial "):
		// A server that does not serve HTTP reads CONNECT as the start
		// of a message and never answers it.
		return fmt.Errorf("%w (no answer to HTTP CONNECT %s: if the server does not serve RPC over HTTP, leave out -http)", err, s.httpPath)
	case errors.Is(err, rpc.ErrMaybeExecuted) && s.httpPath == "" && strings.Contains(err.Error(), "malformed"):
		// What an HTTP server answers is no gob message.
		return fmt.Errorf("%w (is it an HTTP server? -http with its RPC path reaches RPC over HTTP, net/rpc's is /_goRPC_)", err)
	}
	return err
}

// timedOut reports whether err ended a wait: the command's deadline, or
// the socket's (an "i/o timeout", which the dial's own deadline gives when
// it comes first).
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		strings.Contains(err.Error(), "i/o timeout")
}

// isRefused reports whether err is a refused connection.
func isRefused(err error) bool {
	return strings.Contains(err.Error(), "connection refused")
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
		return rpc.ServerError(fmt.Sprintf("%s is %s", s.addr, h.Status))
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
	c, ctx, cancel, err := s.connect()
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	reply, err := c.CallJSON(ctx, method, json.RawMessage(params))
	if err != nil {
		return fmt.Errorf("%s: %w", method, s.explain(method, err))
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, reply, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(reply)
	}
	pretty.WriteByte('\n')
	_, err = s.out.Write(pretty.Bytes())
	return err
}
