// Command quote is semrpc's example of a service run as several servers
// behind one client, over mutual TLS, with metadata and OpenTelemetry
// tracing (see package quotesvc).
//
//	quote certs [-dir DIR] [-client NAME]
//	quote serve [-addr host:port] [-certs DIR] [-name NAME] [-tokens T=TENANT,...] [-trace]
//	quote price [-addrs A,B,...] [-certs DIR] [-token T] [-n N] [-timeout d] [-trace] ITEM QTY
//	quote demo [-servers N] [-n N]
//
// certs writes a CA, a server certificate and a client certificate into
// DIR (default ./quote-certs). serve serves quotes on addr over TLS,
// requiring a client certificate signed by DIR's CA and a bearer token of
// -tokens; it prints "quote: server NAME listening on ADDR" once it
// listens, and shuts down gracefully on SIGINT or SIGTERM. price asks the
// servers at -addrs for N quotes of QTY units of ITEM, spread over them,
// and prints one line per quote naming the server that made it. demo does
// all of this in one process: it starts -servers servers, asks for quotes,
// stops one server half way (the calls go on on the others), and prints
// the spans of both ends. With -trace, serve and price print their spans on
// stderr.
//
// Items: apple, bread, cheese, wine. Tokens by default: t-acme (tenant
// acme, 10% off) and t-zeta (tenant zeta).
//
// Exit status: 0 on success; 1 when a call or the server failed, with a
// message saying whether the call may have run; 2 for a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/semrpc/semrpc/examples/quote/quotesvc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/otelrpc"
)

const (
	exitFailed     = 1
	exitUsage      = 2
	defaultCerts   = "quote-certs"
	defaultAddr    = "127.0.0.1:7443"
	defaultTokens  = "t-acme=acme,t-zeta=zeta"
	shutdownPeriod = 5 * time.Second
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  quote certs [-dir DIR] [-client NAME]
  quote serve [-addr host:port] [-certs DIR] [-name NAME] [-tokens T=TENANT,...] [-trace]
  quote price [-addrs A,B,...] [-certs DIR] [-token T] [-n N] [-timeout d] [-trace] ITEM QTY
  quote demo [-servers N] [-n N]
Run "quote COMMAND -h" for a command's flags.
`

// run is the command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "certs":
		return certsCmd(args[1:], stdout, stderr)
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "price":
		return priceCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "quote: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// parse parses a command's flags; it returns the exit status to end with,
// or -1 to go on.
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below, on stdout for -h
	if err := fs.Parse(args); err != nil {
		w := stderr
		if errors.Is(err, flag.ErrHelp) {
			w = stdout
		}
		fs.SetOutput(w)
		fmt.Fprintf(w, "usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		if w == stdout {
			return 0
		}
		return exitUsage
	}
	return -1
}

func certsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quote certs", flag.ContinueOnError)
	dir := fs.String("dir", defaultCerts, "directory to write the certificates and keys into")
	client := fs.String("client", "quote client", "common name of the client certificate")
	if st := parse(fs, args, stdout, stderr); st >= 0 {
		return st
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quote certs: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := quotesvc.Certs(*dir, *client, 30*24*time.Hour); err != nil {
		fmt.Fprintf(stderr, "quote certs: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "quote: certificates written to %s\n", *dir)
	return 0
}

// parseTokens reads "token=tenant,token=tenant".
func parseTokens(s string) (map[string]string, error) {
	tokens := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		tok, tenant, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || tok == "" || tenant == "" {
			return nil, fmt.Errorf("bad -tokens entry %q: want TOKEN=TENANT", pair)
		}
		tokens[tok] = tenant
	}
	return tokens, nil
}

// tracing returns the otelrpc options printing spans on w as who, or
// none, and the function that flushes them.
func tracing(on bool, w io.Writer, who string) ([]otelrpc.Option, func()) {
	if !on {
		return nil, func() {}
	}
	tp := quotesvc.NewTracing(w, who)
	return []otelrpc.Option{otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{})},
		func() { tp.Shutdown(context.Background()) }
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quote serve", flag.ContinueOnError)
	addr := fs.String("addr", defaultAddr, "address to listen on (port 0: any free port)")
	certs := fs.String("certs", defaultCerts, "directory made by 'quote certs'")
	name := fs.String("name", "", "server name put in replies (default: the address)")
	tokenList := fs.String("tokens", defaultTokens, "accepted bearer tokens, TOKEN=TENANT,...")
	trace := fs.Bool("trace", false, "print spans on stderr")
	if st := parse(fs, args, stdout, stderr); st >= 0 {
		return st
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quote serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	tokens, err := parseTokens(*tokenList)
	if err != nil {
		fmt.Fprintf(stderr, "quote serve: %v\n", err)
		return exitUsage
	}
	cfg, err := quotesvc.ServerTLS(*certs)
	if err != nil {
		fmt.Fprintf(stderr, "quote serve: %v\n", err)
		return exitFailed
	}
	l, err := rpc.ListenTLS("tcp", *addr, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "quote serve: %v\n", err)
		return exitFailed
	}
	if *name == "" {
		*name = l.Addr().String()
	}
	otelOpts, flush := tracing(*trace, stderr, "server "+*name)
	defer flush()
	srv, err := quotesvc.NewServer(*name, tokens, otelOpts...)
	if err != nil {
		l.Close()
		fmt.Fprintf(stderr, "quote serve: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "quote: server %s listening on %s\n", *name, l.Addr())

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "quote serve: %v\n", err)
		return exitFailed
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownPeriod)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "quote serve: shutdown: %v\n", err)
	}
	<-served
	fmt.Fprintf(stdout, "quote: server %s stopped\n", *name)
	return 0
}

// quoteArgs reads ITEM QTY.
func quoteArgs(cmd string, args []string) (string, int, error) {
	if len(args) != 2 {
		return "", 0, fmt.Errorf("%s: want ITEM QTY, got %d argument(s)", cmd, len(args))
	}
	qty, err := strconv.Atoi(args[1])
	if err != nil {
		return "", 0, fmt.Errorf("%s: QTY %q is not a number", cmd, args[1])
	}
	return args[0], qty, nil
}

func priceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quote price", flag.ContinueOnError)
	addrList := fs.String("addrs", defaultAddr, "servers, comma-separated")
	certs := fs.String("certs", defaultCerts, "directory made by 'quote certs'")
	token := fs.String("token", "t-acme", "bearer token")
	n := fs.Int("n", 1, "number of quotes to ask for")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on all the calls")
	trace := fs.Bool("trace", false, "print spans on stderr")
	if st := parse(fs, args, stdout, stderr); st >= 0 {
		return st
	}
	item, qty, err := quoteArgs("quote price", fs.Args())
	if err != nil || *n < 1 || *timeout <= 0 {
		if err == nil {
			err = errors.New("quote price: -n and -timeout must be positive")
		}
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	cfg, err := quotesvc.ClientTLS(*certs, false)
	if err != nil {
		fmt.Fprintf(stderr, "quote price: %v\n", err)
		return exitFailed
	}
	otelOpts, flush := tracing(*trace, stderr, "client")
	defer flush()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := quotesvc.Dial(ctx, strings.Split(*addrList, ","), cfg, *token, otelOpts...)
	if err != nil {
		fmt.Fprintf(stderr, "quote price: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	for range *n {
		if err := printQuote(ctx, c, item, qty, stdout); err != nil {
			fmt.Fprintf(stderr, "quote price: %v\n", err)
			return exitFailed
		}
	}
	return 0
}

func printQuote(ctx context.Context, c *rpc.Client, item string, qty int, w io.Writer) error {
	q, servedBy, err := quotesvc.Price(ctx, c, item, qty)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s x%d: %d.%02d for %s (%d%% off) by %s, caller %q\n",
		item, qty, q.Total/100, q.Total%100, q.Tenant, q.Discount, servedBy, q.Caller)
	return nil
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quote demo", flag.ContinueOnError)
	nservers := fs.Int("servers", 3, "number of servers")
	n := fs.Int("n", 6, "number of quotes")
	if st := parse(fs, args, stdout, stderr); st >= 0 {
		return st
	}
	if fs.NArg() > 0 || *nservers < 2 || *n < 2 {
		fmt.Fprintln(stderr, "quote demo: takes no arguments; -servers and -n must be at least 2")
		return exitUsage
	}
	if err := demo(ctx, *nservers, *n, stdout); err != nil {
		fmt.Fprintf(stderr, "quote demo: %v\n", err)
		return exitFailed
	}
	return 0
}

// lockedWriter serializes the writes of the demo's spans and lines.
type lockedWriter struct {
	mu sync.Mutex // protects w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// demo runs the servers and the client in this process, on loopback.
func demo(ctx context.Context, nservers, n int, out io.Writer) error {
	w := &lockedWriter{w: out}
	dir, err := os.MkdirTemp("", "quote-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := quotesvc.Certs(dir, "demo client", time.Hour); err != nil {
		return err
	}
	serverTLS, err := quotesvc.ServerTLS(dir)
	if err != nil {
		return err
	}
	tokens, _ := parseTokens(defaultTokens)
	type running struct {
		srv  *rpc.Server
		tp   *sdktrace.TracerProvider
		done chan struct{}
	}
	var servers []running
	defer func() {
		for _, s := range servers {
			s.srv.Shutdown(context.Background())
			<-s.done
			s.tp.Shutdown(context.Background())
		}
	}()
	var addrs []string
	for i := range nservers {
		name := fmt.Sprintf("s%d", i+1)
		tp := quotesvc.NewTracing(w, "  server "+name)
		srv, err := quotesvc.NewServer(name, tokens, otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{}))
		if err != nil {
			return err
		}
		l, err := rpc.ListenTLS("tcp", "127.0.0.1:0", serverTLS)
		if err != nil {
			return err
		}
		r := running{srv: srv, tp: tp, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			srv.Serve(l)
		}()
		servers = append(servers, r)
		addrs = append(addrs, l.Addr().String())
		fmt.Fprintf(w, "server %s on %s (mutual TLS)\n", name, l.Addr())
	}

	clientTLS, err := quotesvc.ClientTLS(dir, false)
	if err != nil {
		return err
	}
	tp := quotesvc.NewTracing(w, "  client")
	defer tp.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := quotesvc.Dial(ctx, addrs, clientTLS, "t-acme", otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{}))
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		if i == n/2 {
			fmt.Fprintln(w, "stopping server s1")
			sctx, scancel := context.WithTimeout(ctx, shutdownPeriod)
			servers[0].srv.Shutdown(sctx)
			scancel()
		}
		if err := printQuote(ctx, c, "cheese", 2, w); err != nil {
			return err
		}
	}
	bad, err := quotesvc.Dial(ctx, addrs, clientTLS, "stolen-token")
	if err != nil {
		return err
	}
	defer bad.Close()
	_, _, err = quotesvc.Price(ctx, bad, "cheese", 2)
	fmt.Fprintf(w, "with an unknown token: refused %v, not executed %v\n", errors.Is(err, rpc.ErrRejected), errors.Is(err, rpc.ErrNotExecuted))
	return nil
}
