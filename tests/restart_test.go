package tests

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Ledger is a Counter whose Hold runs, then blocks until released or until
// its connection closes.
type Ledger struct {
	*Counter
	started chan int64
	release chan struct{}
}

func (l *Ledger) Hold(ctx context.Context, args IncrArgs, reply *IncrReply) error {
	if err := l.Incr(args, reply); err != nil {
		return err
	}
	l.started <- args.ID
	select {
	case <-l.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type instance struct {
	addr   string
	srv    *rpc.Server
	ledger *Ledger
	done   chan struct{}
}

func startOn(t *testing.T, addr string) *instance {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 100; i++ { // the old socket may linger a moment
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{
		addr:   l.Addr().String(),
		srv:    rpc.NewServer(rpc.WithLogger(quiet())),
		ledger: &Ledger{Counter: NewCounter(), started: make(chan int64, 16), release: make(chan struct{})},
		done:   make(chan struct{}),
	}
	if err := in.srv.Register(in.ledger); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(in.done)
		in.srv.Serve(l)
	}()
	return in
}

// crash stops the server without a goodbye: connections close, replies of
// running calls are lost, the table is gone.
func (in *instance) crash() {
	in.srv.Close()
	<-in.done
}

// Issue 6, suite 4: a server restarted without its table. Calls of old
// sessions that may have run fail as "may have executed" and are not run
// again; calls never sent go through in a new session.
func TestRestartWithoutTable(t *testing.T) {
	first := startOn(t, "127.0.0.1:0")
	laddr := first.addr

	client, err := rpc.Dial(context.Background(), "tcp", laddr,
		rpc.WithSemantics(semantics.AtMostOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))),
		rpc.WithRedialBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var reply IncrReply
	if err := client.Call(ctx, "Ledger.Incr", IncrArgs{ID: 1}, &reply); err != nil {
		t.Fatal(err)
	}

	// Call 2 runs on the first server, which crashes before replying.
	held := client.Go(ctx, "Ledger.Hold", IncrArgs{ID: 2}, &IncrReply{})
	if id := <-first.ledger.started; id != 2 {
		t.Fatalf("started %d", id)
	}
	first.crash()
	second := startOn(t, laddr)
	defer second.crash()

	<-held.Done
	if !errors.Is(held.Err, rpc.ErrMaybeExecuted) || !errors.Is(held.Err, semantics.ErrEpochMismatch) {
		t.Fatalf("call cut by the restart: %v, want may-have-executed because of the epoch change", held.Err)
	}
	if errors.Is(held.Err, rpc.ErrNotExecuted) {
		t.Fatalf("verdict says not executed, yet it ran: %v", held.Err)
	}
	if n := first.ledger.Runs(2); n != 1 {
		t.Fatalf("call 2 ran %d times on the first server", n)
	}
	if n := second.ledger.Runs(2); n != 0 {
		t.Fatalf("call 2 was silently re-run on the restarted server (%d times)", n)
	}

	// A new call goes through, in a new session, exactly once.
	if err := client.Call(ctx, "Ledger.Incr", IncrArgs{ID: 3}, &reply); err != nil {
		t.Fatalf("new call after restart: %v", err)
	}
	if reply.Runs != 1 || second.ledger.Runs(3) != 1 {
		t.Fatalf("new call ran %d times", second.ledger.Runs(3))
	}
	st := client.Stats()
	if st.SessionsOpened != 2 || st.SessionResets != 1 {
		t.Errorf("sessions opened %d, reset %d; want 2 and 1", st.SessionsOpened, st.SessionResets)
	}
	if second.srv.Stats().Table.EpochMismatch == 0 {
		t.Error("the restarted server saw no old-epoch request")
	}
}
