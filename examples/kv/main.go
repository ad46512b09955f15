// Command kv is semrpc's key/value example: a server and a command-line
// client for the kvservice package.
//
//	kv server [-addr host:port] [-data DIR]
//	kv [-addr host:port] [-timeout d] get KEY
//	kv [-addr host:port] [-timeout d] put KEY VALUE
//	kv [-addr host:port] [-timeout d] append KEY VALUE
//
// Without -data the server keeps everything in memory: a restart loses the
// data and the at-most-once table, and a put in flight across the restart
// fails as "may have executed" (its session's epoch is gone); it is never
// silently run again. With -data, the data and the completion records live
// in one bbolt file, DIR/kv.db, committed together before each reply, so a
// write retried across a crash and restart runs exactly once. DIR must
// exist; a missing kv.db is created, but a kv.db that is not a kv store is
// an error.
//
// The client makes gets at-least-once. It makes puts and appends
// exactly-once, retrying until -timeout ends, across server restarts; if
// the server says it is not durable, the client notes so on stderr and
// makes them at-most-once instead (retried over the same connection or a
// new one, but not across a restart). get prints the value, put prints OK,
// append prints the value before the append. Usage errors exit with
// status 2, failed calls with 1, saying whether the call may have run.
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
	"syscall"
	"time"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

const (
	defaultAddr    = "127.0.0.1:7070"
	dataFile       = "kv.db"
	exitFailed     = 1
	exitUsage      = 2
	shutdownPeriod = 5 * time.Second
)

const usage = `usage:
  kv server [-addr host:port] [-data DIR]
  kv [-addr host:port] [-timeout d] get KEY
  kv [-addr host:port] [-timeout d] put KEY VALUE
  kv [-addr host:port] [-timeout d] append KEY VALUE
`

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
	fs := flag.NewFlagSet("kv", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", defaultAddr, "server address")
	timeout := fs.Duration("timeout", 10*time.Second, "how long a call may take, retries included")
	if err := fs.Parse(args); err != nil {
		return usageError(stderr, err.Error())
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError(stderr, "missing command")
	}
	cmd, rest := rest[0], rest[1:]
	want := map[string]int{"get": 1, "put": 2, "append": 2}
	if cmd == "server" {
		return serve(ctx, *addr, rest, stdout, stderr)
	}
	n, ok := want[cmd]
	if !ok {
		return usageError(stderr, fmt.Sprintf("unknown command %q", cmd))
	}
	if len(rest) != n {
		return usageError(stderr, fmt.Sprintf("%s takes %d argument(s), got %d", cmd, n, len(rest)))
	}
	if *timeout <= 0 {
		return usageError(stderr, "-timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return client(ctx, *addr, cmd, rest, stdout, stderr)
}

func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "kv: %s\n%s", msg, usage)
	return exitUsage
}

// serve runs the server until ctx ends.
func serve(ctx context.Context, addr string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kv server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&addr, "addr", addr, "address to listen on")
	dir := fs.String("data", "", "directory of the durable store (default: in memory)")
	if err := fs.Parse(args); err != nil {
		return usageError(stderr, err.Error())
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Sprintf("server takes no arguments, got %q", fs.Args()))
	}
	logger := log.New(stderr, "kv: ", log.LstdFlags)
	var (
		kv    *kvservice.KV
		opts  = []rpc.Option{rpc.WithLogger(logger)}
		where = "in memory"
	)
	if *dir != "" {
		st, err := semantics.OpenBoltStore(filepath.Join(*dir, dataFile), nil)
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
	} else {
		kv = kvservice.New()
	}
	srv := rpc.NewServer(opts...)
	if err := srv.RegisterName(kvservice.ServiceName, kv); err != nil {
		fmt.Fprintf(stderr, "kv: %v\n", err)
		return exitFailed
	}
	l, err := net.Listen("tcp", addr)
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

// client makes one call and prints its result.
func client(ctx context.Context, addr, cmd string, args []string, stdout, stderr io.Writer) int {
	rc, err := rpc.Dial(ctx, "tcp", addr, rpc.WithRedialBackoff(10*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		fmt.Fprintf(stderr, "kv: %s did not execute: %v\n", cmd, err)
		return exitFailed
	}
	defer rc.Close()
	kv := kvservice.NewClient(rc).WithWritePolicy(semantics.ExactlyOnce())
	var out string
	switch cmd {
	case "get":
		out, err = kv.Get(ctx, args[0])
	case "put":
		err = write(ctx, kv, stderr, func(kv *kvservice.Client) error { return kv.Put(ctx, args[0], args[1]) })
		out = "OK"
	case "append":
		err = write(ctx, kv, stderr, func(kv *kvservice.Client) (err error) {
			out, err = kv.Append(ctx, args[0], args[1])
			return err
		})
	}
	if err != nil {
		fmt.Fprintf(stderr, "kv: %s %s: %s\n", cmd, verdict(err), err)
		return exitFailed
	}
	fmt.Fprintln(stdout, out)
	return 0
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
