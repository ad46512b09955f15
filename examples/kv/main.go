// Command kv is semrpc's key/value example: a server and a command-line
// client for the kvservice package.
//
//	kv server [-addr host:port] [-data DIR | -pg URL]
//	kv [-addr host:port | -addrs A,B,...] [-timeout d] get KEY
//	kv [-addr host:port] [-timeout d] put KEY VALUE
//	kv [-addr host:port] [-timeout d] append KEY VALUE
//
// The client's flags may come before the command or after it, among its
// arguments: "kv get -addr A KEY" and "kv put KEY VALUE -timeout 5s" work
// too. An argument that starts with "-" is a flag unless it follows "--":
// "kv put KEY -- -1". The server's flags come after "server"; a flag before
// "server" is an error that says so. -h, -help or --help, before or after
// any command, prints every flag and exits 0.
//
// Without -data the server keeps everything in memory: a restart loses the
// data and the at-most-once table, and a put in flight across the restart
// fails as "may have executed" (its session's epoch is gone); it is never
// silently run again. With -data, the data and the completion records live
// in one bbolt file, DIR/kv.db, committed together before each reply, so a
// write retried across a crash and restart runs exactly once. DIR is created
// (mode 0700) if it is missing; a missing kv.db is created, but a kv.db that
// is not a kv store is an error. With -pg, the data and the completion
// records live in a PostgreSQL database (URL as in
// postgres://user@host:5432/db), and any number of servers may serve the
// same database: they form one exactly-once domain, where a retry may go
// to any of them.
//
// With -addrs the client spreads its call over several servers (a cluster
// client); with servers on one database, a write whose server dies after
// it may have run is finished by that server once it is back, or by
// another of the domain, exactly once.
//
// The client waits for a server that is not up yet, or down, or restarting,
// until -timeout (10s by default) ends: every command may start before its
// server. It also sends again, until -timeout, a call that a server refused
// without running it for a reason that may pass (with -pg, the database is
// down or restarting: "pgstore: ... request rejected before execution"). Gets are at-least-once. Puts and appends are exactly-once,
// retried across server restarts; if the server says it is not durable,
// the client notes so on stderr and makes them at-most-once instead
// (retried over the same connection or a new one, but not across a
// restart). get prints the value and a newline; put prints OK; append
// prints the value before the append.
//
// Exit status: 0 when the command succeeded; 1 when its call failed, with a
// message saying whether it may have run; 2 for a usage error; 3 when get
// finds no such key (it then prints nothing on stdout and "key not found"
// on stderr, while a key set to "" prints an empty line and exits 0).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
	"github.com/semrpc/semrpc/stores/pgstore"
)

const (
	defaultAddr    = "127.0.0.1:7070"
	defaultTimeout = 10 * time.Second
	dataFile       = "kv.db"
	dataDirMode    = 0o700
	exitFailed     = 1
	exitUsage      = 2
	exitNotFound   = 3
	shutdownPeriod = 5 * time.Second
)

// clientCommands are the client's commands and how many arguments each takes.
var clientCommands = map[string]int{"get": 1, "put": 2, "append": 2}

// clientConfig holds the client's flags.
type clientConfig struct {
	addr    string
	addrs   string
	timeout time.Duration
}

func clientFlags(c *clientConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("kv", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", defaultAddr, "the server's `host:port`")
	fs.StringVar(&c.addrs, "addrs", "", "several servers' `host:port,host:port,...`, served by one\n"+
		"database (kv server -pg); replaces -addr")
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout,
		"how long the command may take (a `duration` such as 500ms or 1m),\n"+
			"waiting for a server (or its database) that is down or restarting included")
	return fs
}

// serverConfig holds the server's flags.
type serverConfig struct {
	addr string
	dir  string
	pg   string
}

func serverFlags(c *serverConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("kv server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", defaultAddr, "the `host:port` to listen on")
	fs.StringVar(&c.dir, "data", "",
		"keep the data durably in `DIR`/"+dataFile+", creating DIR (mode 0700) if missing;\n"+
			"without -data or -pg the data lives in memory and a restart loses it")
	fs.StringVar(&c.pg, "pg", "",
		"keep the data durably in the PostgreSQL database at `URL`\n"+
			"(postgres://user@host:5432/db); any number of servers may share it")
	return fs
}

// usage returns the help text: the commands, every flag, the exit statuses.
func usage() string {
	var b strings.Builder
	b.WriteString(`usage:
  kv [flags] get KEY            print KEY's value
  kv [flags] put KEY VALUE      set KEY to VALUE, print OK
  kv [flags] append KEY VALUE   append VALUE to KEY's value, print the value before
  kv server [server flags]      serve the store
  kv -h, kv server -h           print this help

Flags of get, put and append, before or after the command ("--" ends them):
`)
	fs := clientFlags(&clientConfig{})
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString("\nFlags of kv server, after \"server\":\n")
	fs = serverFlags(&serverConfig{})
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString(`
Exit status: 0 done; 1 the call failed (the message says whether it may
have run); 2 usage error; 3 get found no such key ("key not found" on stderr).
`)
	return b.String()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command with args (without the program name) until it is
// done or the process is interrupted, and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with the server stopping when ctx ends.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cc clientConfig
	fs := clientFlags(&cc)
	if err := fs.Parse(args); err != nil {
		hint := ""
		if slices.Contains(args, "server") {
			hint = `the server's flags go after "server"`
		}
		return flagError(stdout, stderr, err, hint)
	}
	if fs.NArg() == 0 {
		return usageError(stderr, "missing command")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "server" {
		if fs.NFlag() > 0 {
			return usageError(stderr, `the server's flags go after "server": kv server [-addr host:port] [-data DIR | -pg URL]`)
		}
		return serve(ctx, rest, stdout, stderr)
	}
	n, ok := clientCommands[cmd]
	if !ok {
		return usageError(stderr, fmt.Sprintf("unknown command %q", cmd))
	}
	operands, err := parseAnywhere(fs, rest)
	if err != nil {
		hint := ""
		if strings.HasPrefix(err.Error(), "flag provided but not defined") {
			hint = `the flags of get, put and append are -addr, -addrs and -timeout; an argument starting with "-" goes after "--", as in kv put KEY -- -VALUE`
		}
		return flagError(stdout, stderr, err, hint)
	}
	if len(operands) != n {
		return usageError(stderr, fmt.Sprintf("%s takes %d argument(s), got %d", cmd, n, len(operands)))
	}
	if cc.timeout <= 0 {
		return usageError(stderr, "-timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cc.timeout)
	defer cancel()
	addrs := []string{cc.addr}
	if cc.addrs != "" {
		addrs = strings.Split(cc.addrs, ",")
		if slices.Contains(addrs, "") {
			return usageError(stderr, "-addrs takes host:port,host:port,... with no empty entry")
		}
		for i, a := range addrs {
			if slices.Contains(addrs[:i], a) {
				return usageError(stderr, fmt.Sprintf("-addrs lists %q twice", a))
			}
		}
	}
	return client(ctx, addrs, cmd, operands, stdout, stderr)
}

// parseAnywhere parses fs's flags wherever they are among args and returns
// the other arguments in order. "--" ends the flags: every argument after it
// is returned.
func parseAnywhere(fs *flag.FlagSet, args []string) (operands []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(operands, rest...), nil
		}
		if len(rest) == 0 {
			return operands, nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// flagError reports an error from parsing flags: the help on stdout with
// status 0 when it was asked for, else a usage error.
func flagError(stdout, stderr io.Writer, err error, hint string) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage())
		return 0
	}
	msg := err.Error()
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return usageError(stderr, msg)
}

func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "kv: %s\n%s", msg, usage())
	return exitUsage
}

// serve runs the server with args (those after "server") until ctx ends.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var sc serverConfig
	fs := serverFlags(&sc)
	operands, err := parseAnywhere(fs, args)
	if err != nil {
		return flagError(stdout, stderr, err, "")
	}
	if len(operands) > 0 {
		return usageError(stderr, fmt.Sprintf("server takes no arguments, got %q", operands))
	}
	logger := log.New(stderr, "kv: ", log.LstdFlags)
	var (
		kv    *kvservice.KV
		opts  = append([]rpc.Option{rpc.WithLogger(logger)}, testServerOptions...)
		where = "in memory"
	)
	switch {
	case sc.dir != "" && sc.pg != "":
		return usageError(stderr, "-data and -pg exclude each other")
	case sc.pg != "":
		st, err := pgstore.Open(ctx, sc.pg, nil)
		if err != nil {
			fmt.Fprintf(stderr, "kv: %v\n", err)
			return exitFailed
		}
		defer st.Close()
		if kv, err = kvservice.NewPostgres(ctx, st); err != nil {
			fmt.Fprintf(stderr, "kv: %v\n", err)
			return exitFailed
		}
		opts = append(opts, rpc.WithDurableStore(st))
		where = "in PostgreSQL, domain " + st.Domain()
	case sc.dir != "":
		if err := os.MkdirAll(sc.dir, dataDirMode); err != nil {
			fmt.Fprintf(stderr, "kv: cannot create the data directory: %v\n", err)
			return exitFailed
		}
		st, err := boltstore.Open(filepath.Join(sc.dir, dataFile), nil)
		if err != nil {
			fmt.Fprintf(stderr, "kv: %v\n", err)
			return exitFailed
		}
		defer st.Close()
		if kv, err = kvservice.NewDurable(st); err != nil {
			fmt.Fprintf(stderr, "kv: %v\n", err)
			return exitFailed
		}
		opts = append(opts, rpc.WithDurableStore(st))
		where = "in " + st.Path()
	default:
		kv = kvservice.New()
	}
	srv := rpc.NewServer(opts...)
	if err := srv.RegisterName(kvservice.ServiceName, kv); err != nil {
		fmt.Fprintf(stderr, "kv: %v\n", err)
		return exitFailed
	}
	l, err := net.Listen("tcp", sc.addr)
	if err != nil {
		fmt.Fprintf(stderr, "kv: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "kv: serving on %s, data %s\n", l.Addr(), where)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		srv.Close()
		fmt.Fprintf(stderr, "kv: serve: %v\n", err)
		return exitFailed
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownPeriod)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Printf("shutdown: %v", err)
	}
	<-done
	return 0
}

// testServerOptions are added to the server's options; only the tests
// set them (a fault to inject, in a server process of their own).
var testServerOptions []rpc.Option

// The client's policies. A CLI makes one call per process, so its calls
// wait for the server and retry until -timeout ends, with no other bound.
var (
	readPolicy  = semantics.AtLeastOnce(semantics.MaxAttempts(0))
	writePolicy = semantics.ExactlyOnce()
)

// client makes one call and prints its result.
func client(ctx context.Context, addrs []string, cmd string, args []string, stdout, stderr io.Writer) int {
	// Dial does no I/O: the call connects, and waits for a server that is
	// not up yet.
	var (
		rc  *rpc.Client
		err error
	)
	backoff := rpc.WithRedialBackoff(10*time.Millisecond, 200*time.Millisecond)
	if len(addrs) == 1 {
		rc, err = rpc.Dial(ctx, "tcp", addrs[0], backoff)
	} else {
		rc, err = rpc.DialCluster(ctx, "tcp", addrs, backoff)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kv: %s did not execute: %v\n", cmd, err)
		return exitFailed
	}
	defer rc.Close()
	kv := kvservice.NewClient(rc).WithReadPolicy(readPolicy).WithWritePolicy(writePolicy)
	var (
		out   string
		found bool
		pause = refusedPause
	)
	for {
		switch cmd {
		case "get":
			out, found, err = kv.Lookup(ctx, args[0])
		case "put":
			err = write(ctx, kv, stderr, func(kv *kvservice.Client) error { return kv.Put(ctx, args[0], args[1]) })
			out = "OK"
		case "append":
			err = write(ctx, kv, stderr, func(kv *kvservice.Client) (err error) {
				out, err = kv.Append(ctx, args[0], args[1])
				return err
			})
		}
		if !refusedForNow(err) || !sleepCtx(ctx, pause) {
			break
		}
		if pause == refusedPause {
			fmt.Fprintf(stderr, "kv: note: %s refused, not executed (%v); trying again until -timeout\n", cmd, err)
		}
		pause = min(2*pause, maxRefusedPause)
	}
	if cmd == "get" && err == nil && !found {
		fmt.Fprintf(stderr, "kv: get %q: key not found\n", args[0])
		return exitNotFound
	}
	if err != nil {
		fmt.Fprintf(stderr, "kv: %s %s: %s\n", cmd, verdict(err), err)
		return exitFailed
	}
	fmt.Fprintln(stdout, out)
	return 0
}

// How long the client waits before sending again a call that a server
// refused for now (see refusedForNow), doubling up to the maximum.
const (
	refusedPause    = 50 * time.Millisecond
	maxRefusedPause = time.Second
)

// refusedForNow reports whether err is a refusal that a later attempt may
// not meet: the call did not execute, and a server refused it with the
// generic code (its store could not reach its database, say, or its table
// was full), not for a reason of the call's own (an unknown method, bad
// arguments, a non-durable server, a stale request). The policies never
// retry a refusal; sending the call again is safe, since it did not run.
func refusedForNow(err error) bool {
	var re *rpc.RejectedError
	return errors.Is(err, semantics.ErrNotExecuted) && errors.As(err, &re) && re.Code == rpc.CodeRejected
}

// sleepCtx waits d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// write makes a write exactly-once, or at-most-once if the server is not
// durable.
func write(ctx context.Context, kv *kvservice.Client, stderr io.Writer, call func(*kvservice.Client) error) error {
	err := call(kv)
	if errors.Is(err, semantics.ErrNotDurable) && errors.Is(err, semantics.ErrNotExecuted) {
		fmt.Fprintln(stderr, "kv: note: the server is not durable (no -data); writing at-most-once, not exactly-once")
		err = call(kv.WithWritePolicy(semantics.AtMostOnce()))
	}
	return err
}

func verdict(err error) string {
	switch {
	case errors.Is(err, semantics.ErrApplication):
		return "failed"
	case errors.Is(err, semantics.ErrNotExecuted):
		return "did not execute"
	case errors.Is(err, semantics.ErrMaybeExecuted):
		return "may have executed"
	}
	return "failed"
}
