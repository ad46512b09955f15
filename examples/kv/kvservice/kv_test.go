package kvservice

import (
	"context"
	"errors"
	"fmt"
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

// backends runs a test against the in-memory KV and the durable one.
func backends(t *testing.T, f func(t *testing.T, kv *KV)) {
	t.Run("memory", func(t *testing.T) { f(t, New()) })
	t.Run("durable", func(t *testing.T) { f(t, newDurable(t, t.TempDir())) })
}

func newDurable(t testing.TB, dir string) *KV {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(dir, "kv.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kv, err := NewDurable(st)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestServiceSemantics(t *testing.T) {
	backends(t, func(t *testing.T, kv *KV) {
		ctx := context.Background()
		get := func(key string) string {
			var r GetReply
			if err := kv.Get(ctx, GetArgs{Key: key}, &r); err != nil {
				t.Fatal(err)
			}
			return r.Value
		}
		appendKV := func(key, value string) string {
			var r AppendReply
			if err := kv.Append(ctx, AppendArgs{Key: key, Value: value}, &r); err != nil {
				t.Fatal(err)
			}
			return r.Old
		}
		if v := get("k"); v != "" {
			t.Fatalf("missing key reads %q, want \"\"", v)
		}
		if old := appendKV("k", "a"); old != "" {
			t.Fatalf("first append returned old %q, want \"\"", old)
		}
		if old := appendKV("k", "b"); old != "a" {
			t.Fatalf("second append returned old %q, want a", old)
		}
		if v := get("k"); v != "ab" {
			t.Fatalf("after appends: %q, want ab", v)
		}
		if err := kv.Put(ctx, PutArgs{Key: "k", Value: "x"}, &PutReply{}); err != nil {
			t.Fatal(err)
		}
		if v, other := get("k"), get("other"); v != "x" || other != "" {
			t.Fatalf("after put: k=%q other=%q, want x and \"\"", v, other)
		}
	})
}

// TestMissingKeyDiffersFromEmptyValue pins that Get's Found tells a key
// that was never set from one set to "", by Put or by appending "".
func TestMissingKeyDiffersFromEmptyValue(t *testing.T) {
	backends(t, func(t *testing.T, kv *KV) {
		ctx := context.Background()
		get := func(key string) GetReply {
			var r GetReply
			if err := kv.Get(ctx, GetArgs{Key: key}, &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if err := kv.Put(ctx, PutArgs{Key: "put", Value: ""}, &PutReply{}); err != nil {
			t.Fatal(err)
		}
		if err := kv.Append(ctx, AppendArgs{Key: "appended", Value: ""}, &AppendReply{}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			key  string
			want GetReply
		}{
			{"missing", GetReply{Value: "", Found: false}},
			{"put", GetReply{Value: "", Found: true}},
			{"appended", GetReply{Value: "", Found: true}},
		}
		for _, tt := range tests {
			if got := get(tt.key); got != tt.want {
				t.Errorf("Get(%q) = %+v, want %+v", tt.key, got, tt.want)
			}
		}
	})
}

// TestLookupOverTheWire checks Client.Lookup against a server and against
// one from before GetReply.Found, whose replies gob decodes with Found
// false: a value there still counts as found.
func TestLookupOverTheWire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv := New()
	kv.Put(ctx, PutArgs{Key: "empty", Value: ""}, &PutReply{})
	kv.Put(ctx, PutArgs{Key: "k", Value: "v"}, &PutReply{})
	cur, old := serveAs(t, kv), serveAs(t, &oldKV{data: map[string]string{"empty": "", "k": "v"}})
	tests := []struct {
		name      string
		addr      string
		key       string
		wantValue string
		wantFound bool
	}{
		{"missing", cur, "nope", "", false},
		{"empty value", cur, "empty", "", true},
		{"value", cur, "k", "v", true},
		{"old server, missing", old, "nope", "", false},
		{"old server, value", old, "k", "v", true},
		// An old server cannot tell "empty" from missing; neither can we.
		{"old server, empty value", old, "empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := rpc.Dial(ctx, "tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			v, found, err := NewClient(rc).Lookup(ctx, tt.key)
			if err != nil || v != tt.wantValue || found != tt.wantFound {
				t.Fatalf("Lookup(%q) = %q, %v, %v; want %q, %v", tt.key, v, found, err, tt.wantValue, tt.wantFound)
			}
		})
	}
}

// oldKV is a KV service from before GetReply.Found.
type oldKV struct{ data map[string]string }

type oldGetReply struct{ Value string }

func (kv *oldKV) Get(args GetArgs, reply *oldGetReply) error {
	reply.Value = kv.data[args.Key]
	return nil
}

// TestConcurrentAppends checks that appends are atomic: every append's old
// value is a distinct prefix of the final value.
func TestConcurrentAppends(t *testing.T) {
	backends(t, func(t *testing.T, kv *KV) {
		const n = 50
		olds := make(chan string, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var r AppendReply
				if err := kv.Append(context.Background(), AppendArgs{Key: "k", Value: "x"}, &r); err != nil {
					t.Error(err)
				}
				olds <- r.Old
			}()
		}
		wg.Wait()
		close(olds)
		seen := make(map[int]bool)
		for old := range olds {
			seen[len(old)] = true
		}
		if len(seen) != n {
			t.Fatalf("%d distinct old values for %d appends: appends are not atomic", len(seen), n)
		}
	})
}

// dupTransport delivers every request twice, as a network that duplicates
// packets would, and records which requests carried a semantics header.
type dupTransport struct {
	rpc.Transport
	mu      sync.Mutex
	headers map[string][]bool // by method: header present, per request
}

func (d *dupTransport) RoundTrip(ctx context.Context, req *rpc.Request, reply any) error {
	d.mu.Lock()
	d.headers[req.ServiceMethod] = append(d.headers[req.ServiceMethod], req.Header != nil)
	d.mu.Unlock()
	if err := d.Transport.RoundTrip(ctx, req, reply); err != nil {
		return err
	}
	return d.Transport.RoundTrip(ctx, req, reply)
}

func serve(t *testing.T, kv *KV, opts ...rpc.Option) string {
	t.Helper()
	return serveAs(t, kv, opts...)
}

// serveAs serves rcvr as ServiceName over loopback until the test ends.
func serveAs(t *testing.T, rcvr any, opts ...rpc.Option) string {
	t.Helper()
	opts = append([]rpc.Option{rpc.WithLogger(log.New(io.Discard, "", 0))}, opts...)
	srv := rpc.NewServer(opts...)
	if err := srv.RegisterName(ServiceName, rcvr); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, rpc.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// TestClientRoundTrip runs the client against a server over loopback
// through a transport that duplicates every request: appends still apply
// once (they are at-most-once), and only writes carry a header.
func TestClientRoundTrip(t *testing.T) {
	addr := serve(t, New())
	var d net.Dialer
	dup := &dupTransport{
		Transport: rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }),
		headers:   make(map[string][]bool),
	}
	rc := rpc.NewClient(dup)
	defer rc.Close()
	c := NewClient(rc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := c.Put(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a", "ab0"} {
		old, err := c.Append(ctx, "k", fmt.Sprint("b", i))
		if err != nil {
			t.Fatal(err)
		}
		if old != want {
			t.Fatalf("append %d: old %q, want %q: a duplicated append ran twice", i, old, want)
		}
	}
	v, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if v != "ab0b1" {
		t.Fatalf("value %q, want ab0b1: a duplicated append ran twice", v)
	}
	dup.mu.Lock()
	defer dup.mu.Unlock()
	for method, want := range map[string]bool{"KV.Put": true, "KV.Append": true, "KV.Get": false} {
		hs := dup.headers[method]
		if len(hs) == 0 {
			t.Errorf("%s: no request seen", method)
		}
		for _, h := range hs {
			if h != want {
				t.Errorf("%s: header present = %v, want %v", method, h, want)
			}
		}
	}
}

// TestExactlyOnceNeedsDurableServer checks that exactly-once writes are
// refused, not executed, by an in-memory server and accepted by a durable
// one.
func TestExactlyOnceNeedsDurableServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	mem := New()
	rc, err := rpc.Dial(ctx, "tcp", serve(t, mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = NewClient(rc).WithWritePolicy(semantics.ExactlyOnce()).Append(ctx, "k", "x")
	if !errors.Is(err, semantics.ErrNotDurable) || !errors.Is(err, semantics.ErrNotExecuted) {
		t.Fatalf("exactly-once append on an in-memory server: %v, want ErrNotDurable, not executed", err)
	}
	var r GetReply
	mem.Get(ctx, GetArgs{Key: "k"}, &r)
	if r.Value != "" {
		t.Fatalf("refused append ran: value %q", r.Value)
	}

	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "kv.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kv, err := NewDurable(st)
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := rpc.Dial(ctx, "tcp", serve(t, kv, rpc.WithDurableStore(st)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	c := NewClient(rc2).WithWritePolicy(semantics.ExactlyOnce())
	for i := 0; i < 3; i++ {
		if _, err := c.Append(ctx, "k", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := c.Get(ctx, "k"); err != nil || v != "xxx" {
		t.Fatalf("durable value %q, %v; want xxx", v, err)
	}
}
