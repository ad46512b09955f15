package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

// Counter is a durable test service: its count lives in the store's file.
type Counter struct {
	st *boltstore.Store
}

func (c *Counter) Incr(ctx context.Context, by int, reply *int) error {
	return c.st.Update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("counter"))
		if err != nil {
			return err
		}
		n := 0
		if v := b.Get([]byte("n")); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		n += by
		*reply = n
		return b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, uint64(n)))
	})
}

func (c *Counter) Refuse(ctx context.Context, by int, reply *int) error {
	*reply = by
	return errors.New("refused")
}

func (c *Counter) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := c.Incr(context.Background(), 0, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// node is a server that a test stops and starts again on the same address,
// with or without a durable store.
type node struct {
	t    *testing.T
	path string // store file; "" for an in-memory server
	addr string

	srv     *Server
	st      *boltstore.Store
	counter *Counter
	done    chan error
}

func startNode(t *testing.T, path, addr string) *node {
	t.Helper()
	n := &node{t: t, path: path, addr: addr, done: make(chan error, 1)}
	opts := []Option{WithLogger(discardLogger())}
	if path != "" {
		st, err := boltstore.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.st = st
		n.counter = &Counter{st: st}
		opts = append(opts, WithDurableStore(st))
	} else {
		// An in-memory server has no Counter state to speak of; a store
		// in a file nobody reopens stands in for memory.
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "scratch.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		n.st = st
		n.counter = &Counter{st: st}
	}
	n.srv = NewServer(opts...)
	if err := n.srv.Register(n.counter); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	go func() { n.done <- n.srv.Serve(l) }()
	t.Cleanup(n.stop)
	return n
}

// stop closes the server and its store, as a crash would, but in order.
func (n *node) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Close()
	<-n.done
	n.st.Close()
	n.srv = nil
}

// loseReply is a transport that, for the first call of method, lets the
// request through and then loses the reply, calling lost before the client
// retries: the call ran, and the caller does not know it.
type loseReply struct {
	Transport
	method string
	lost   func()
	once   sync.Once
}

func (l *loseReply) RoundTrip(ctx context.Context, req *Request, reply any) error {
	err := l.Transport.RoundTrip(ctx, req, reply)
	if req.ServiceMethod != l.method || (err != nil && !errors.Is(err, ErrApplication)) {
		return err
	}
	lostNow := false
	l.once.Do(func() { lostNow = true })
	if !lostNow {
		return err
	}
	l.lost()
	return semantics.MaybeExecuted(errors.New("test: reply lost"))
}

func dialLossy(t *testing.T, addr, method string, lost func()) *Client {
	var d net.Dialer
	tr := &loseReply{
		Transport: NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}, WithRedialBackoff(time.Millisecond, 10*time.Millisecond)),
		method: method,
		lost:   lost,
	}
	c := NewClient(tr, WithLogger(discardLogger()))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDurableServerHandshake(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, filepath.Join(dir, "s.db"), "127.0.0.1:0")
	if !n.srv.durable || n.srv.Table() != n.st.Table() || n.srv.Table().Epoch() != n.st.Epoch() {
		t.Fatal("WithDurableStore did not install the store's table")
	}
	c := dial(t, n.addr)
	var got int
	if err := c.Call(ctxT(t), "Counter.Incr", 2, &got, WithSemantics(semantics.ExactlyOnce())); err != nil || got != 2 {
		t.Fatalf("exactly-once call: %d, %v", got, err)
	}
	mem := startNode(t, "", "127.0.0.1:0")
	err := dial(t, mem.addr).Call(ctxT(t), "Counter.Incr", 2, &got, WithSemantics(semantics.ExactlyOnce()))
	if !errors.Is(err, semantics.ErrNotDurable) || !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("exactly-once call on an in-memory server: %v", err)
	}
}

// TestExactlyOnceAcrossRestart: a call runs, its reply is lost, the server
// restarts from its store, and the retry gets the original reply without
// running the method again. The same holds for an application error.
func TestExactlyOnceAcrossRestart(t *testing.T) {
	for _, method := range []string{"Counter.Incr", "Counter.Refuse"} {
		t.Run(method, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			n := startNode(t, path, "127.0.0.1:0")
			addr := n.addr
			c := dialLossy(t, addr, method, func() {
				n.stop()
				n = startNode(t, path, addr)
			})
			policy := semantics.ExactlyOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))
			var got int
			err := c.Call(ctxT(t), method, 5, &got, WithSemantics(policy))
			if method == "Counter.Refuse" {
				if !errors.Is(err, ErrApplication) || err.Error() != "refused" {
					t.Fatalf("retried failing call: %v, want the recorded application error", err)
				}
			} else if err != nil || got != 5 {
				t.Fatalf("retried call: %d, %v; want 5", got, err)
			}
			if st := n.srv.Stats(); st.Table.Restored != 1 || st.Table.Duplicates != 1 || st.Methods[method].Calls != 0 {
				t.Fatalf("after restart: %+v, calls %d; want the restored record to answer", st.Table, st.Methods[method].Calls)
			}
			if method == "Counter.Incr" {
				if cnt := n.counter.count(t); cnt != 5 {
					t.Fatalf("count %d after one call of +5: ran %d times", cnt, cnt/5)
				}
				// The session survives the restart: a new call runs.
				if err := c.Call(ctxT(t), method, 1, &got, WithSemantics(policy)); err != nil || got != 6 {
					t.Fatalf("next call: %d, %v", got, err)
				}
				if s := c.Stats(); s.SessionsOpened != 1 || s.SessionResets != 0 {
					t.Fatalf("client stats %+v: the session did not survive", s)
				}
			}
		})
	}
}

// TestAtMostOnceRestartWithoutStore: the same scenario against an
// in-memory server ends with a may-have-executed error, never a silent
// second run.
func TestAtMostOnceRestartWithoutStore(t *testing.T) {
	n := startNode(t, "", "127.0.0.1:0")
	addr := n.addr
	c := dialLossy(t, addr, "Counter.Incr", func() {
		n.stop()
		n = startNode(t, "", addr)
	})
	var got int
	err := c.Call(ctxT(t), "Counter.Incr", 5, &got, WithSemantics(semantics.AtMostOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))))
	if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, semantics.ErrEpochMismatch) {
		t.Fatalf("retry after a restart without a store: %v, want may have executed, epoch mismatch", err)
	}
	if calls := n.srv.Stats().Methods["Counter.Incr"].Calls; calls != 0 {
		t.Fatalf("the restarted server ran the call %d times", calls)
	}
}

// TestDurableStoreFailureRejects: a call that the store cannot commit is
// refused as not executed.
func TestDurableStoreFailureRejects(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "s.db"), "127.0.0.1:0")
	c := dial(t, n.addr)
	var got int
	if err := c.Call(ctxT(t), "Counter.Incr", 1, &got, WithSemantics(semantics.ExactlyOnce())); err != nil {
		t.Fatal(err)
	}
	n.st.Close()
	err := c.Call(ctxT(t), "Counter.Incr", 1, &got, WithSemantics(semantics.ExactlyOnce()))
	if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, ErrRejected) {
		t.Fatalf("call on a closed store: %v, want rejected, not executed", err)
	}
	if st := n.srv.Stats().Table; st.Aborted != 1 {
		t.Fatalf("table %+v: the failed call's ticket was not given back", st)
	}
}

// TestDurableDuplicateWrongMethod: a sequence number reused for another
// method is refused instead of answered with the wrong reply type.
func TestDurableDuplicateWrongMethod(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	n := startNode(t, path, "127.0.0.1:0")
	var got int
	c := dial(t, n.addr)
	tr := c.t
	var open OpenReply
	if err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: openMethod, Args: &OpenArgs{Version: 2}}, &open); err != nil {
		t.Fatal(err)
	}
	h := semantics.Header{Client: open.Client, Seq: 1, Ack: 1, Epoch: n.st.Epoch()}
	if err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "Counter.Incr", Header: &h, Args: 1}, &got); err != nil {
		t.Fatal(err)
	}
	addr := n.addr
	n.stop()
	startNode(t, path, addr)
	// A fresh connection: the old one may not have noticed the restart yet,
	// and a call on it would truthfully be may-have-executed.
	tr = dial(t, addr).t
	err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "Counter.Refuse", Header: &h, Args: 1}, &got)
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("reused seq: %v, want a rejection", err)
	}
	got = 0
	if err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "Counter.Incr", Header: &h, Args: 1}, &got); err != nil || got != 1 {
		t.Fatalf("duplicate after restart: %d, %v; want the stored reply 1", got, err)
	}
}
