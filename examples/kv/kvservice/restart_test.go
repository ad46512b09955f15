package kvservice

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

// restartable is a KV server that a test restarts on the same address:
// durable if dir is set, in memory otherwise.
type restartable struct {
	t    *testing.T
	dir  string
	addr string
	srv  *rpc.Server
	st   *boltstore.Store
	kv   *KV
	done chan error
}

func startRestartable(t *testing.T, dir, addr string) *restartable {
	t.Helper()
	r := &restartable{t: t, dir: dir, done: make(chan error, 1)}
	opts := []rpc.Option{rpc.WithLogger(log.New(io.Discard, "", 0))}
	if dir != "" {
		st, err := boltstore.Open(filepath.Join(dir, "kv.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		r.st = st
		if r.kv, err = NewDurable(st); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, rpc.WithDurableStore(st))
	} else {
		r.kv = New()
	}
	r.srv = rpc.NewServer(opts...)
	if err := r.srv.RegisterName(ServiceName, r.kv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go func() { r.done <- r.srv.Serve(l) }()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) stop() {
	if r.srv == nil {
		return
	}
	r.srv.Close()
	<-r.done
	if r.st != nil {
		r.st.Close()
	}
	r.srv = nil
}

func (r *restartable) restart() *restartable {
	r.stop()
	return startRestartable(r.t, r.dir, r.addr)
}

// loseFirstAppend loses the reply of the first Append and calls lost
// before the client retries it.
type loseFirstAppend struct {
	rpc.Transport
	once sync.Once
	lost func()
}

func (l *loseFirstAppend) RoundTrip(ctx context.Context, req *rpc.Request, reply any) error {
	err := l.Transport.RoundTrip(ctx, req, reply)
	if err != nil || req.ServiceMethod != ServiceName+".Append" {
		return err
	}
	lostNow := false
	l.once.Do(func() { lostNow = true })
	if lostNow {
		l.lost()
		return semantics.MaybeExecuted(errors.New("test: reply lost"))
	}
	return nil
}

// TestAppendAcrossRestart: an append runs, its reply is lost, the server
// restarts, and the client retries. A durable server answers with the
// original reply and the append applied once; an in-memory one makes the
// call fail as "may have executed", and does not run it again.
func TestAppendAcrossRestart(t *testing.T) {
	for _, durable := range []bool{true, false} {
		name := map[bool]string{true: "durable", false: "memory"}[durable]
		t.Run(name, func(t *testing.T) {
			dir := ""
			policy := semantics.AtMostOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))
			if durable {
				dir = t.TempDir()
				policy = semantics.ExactlyOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))
			}
			srv := startRestartable(t, dir, "127.0.0.1:0")
			addr := srv.addr
			var d net.Dialer
			tr := &loseFirstAppend{
				Transport: rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
					return d.DialContext(ctx, "tcp", addr)
				}, rpc.WithRedialBackoff(time.Millisecond, 10*time.Millisecond)),
				lost: func() { srv = srv.restart() },
			}
			rc := rpc.NewClient(tr)
			defer rc.Close()
			c := NewClient(rc).WithWritePolicy(policy)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if durable {
				if err := c.Put(ctx, "k", "a"); err != nil {
					t.Fatal(err)
				}
			}
			old, err := c.Append(ctx, "k", "b")
			v, gerr := c.Get(ctx, "k")
			if gerr != nil {
				t.Fatal(gerr)
			}
			if durable {
				if err != nil || old != "a" || v != "ab" {
					t.Fatalf("append across a restart: old %q, %v; value %q; want a, nil, ab", old, err, v)
				}
				return
			}
			if !errors.Is(err, semantics.ErrMaybeExecuted) || !errors.Is(err, semantics.ErrEpochMismatch) {
				t.Fatalf("append across an in-memory restart: %v, want may have executed (epoch changed)", err)
			}
			if v != "" {
				t.Fatalf("the restarted server ran the append: value %q", v)
			}
		})
	}
}
