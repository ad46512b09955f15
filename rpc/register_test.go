package rpc

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// Till mixes methods that write through the store's transaction (Add)
// with methods that take no context (Double, Note).
type Till struct{ Tally }

// Double computes its reply from its argument alone.
func (Till) Double(by int, reply *int) error { *reply = 2 * by; return nil }

// Note is lab-style (no error result) and takes no context.
func (Till) Note(by int, reply *int) { *reply = by }

// newFileServer returns a server with a durable file store (a Store other
// than bbolt, durable_store_test.go), made with opt.
func newFileServer(t *testing.T, opt func(*fileStore) Option) *Server {
	t.Helper()
	st, err := openFileStore(filepath.Join(t.TempDir(), "store.gob"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(WithLogger(discardLogger()), opt(st))
	t.Cleanup(func() { s.Close() })
	return s
}

func withStore(st *fileStore) Option { return WithDurableStore(st) }
func withTable(st *fileStore) Option { return WithTable(st.Table()) }

// TestDurableServerRefusesMethodsWithoutContext: on a server with a durable
// store, given with WithDurableStore or as a durable table with WithTable,
// Register and RegisterName refuse a service with a method that takes no
// context, name every such method, say how to fix it, and publish nothing.
func TestDurableServerRefusesMethodsWithoutContext(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opt      func(*fileStore) Option
		register func(*Server) error
		service  string
	}{
		{"Register, WithDurableStore", withStore, func(s *Server) error { return s.Register(Till{}) }, "Till"},
		{"RegisterName, WithDurableStore", withStore, func(s *Server) error { return s.RegisterName("Bank", Till{}) }, "Bank"},
		{"Register, WithTable of a durable store", withTable, func(s *Server) error { return s.Register(Till{}) }, "Till"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newFileServer(t, tt.opt)
			err := tt.register(s)
			if !errors.Is(err, ErrNeedsContext) {
				t.Fatalf("Register: %v, want ErrNeedsContext", err)
			}
			for _, want := range []string{
				tt.service + ".Double, " + tt.service + ".Note take no context.Context",
				"durable store",
				"exactly-once",
				"func (t *" + tt.service + ") Double(ctx context.Context, args A, reply *R) error",
				"semantics.TxOf[T](ctx); boltstore.TxOf(ctx)",
				`pass rpc.OutsideTransaction("Double", "Note") to Register`,
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error lacks %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), ".Add") {
				t.Errorf("the error names Add, which takes a context:\n%v", err)
			}
			if _, lerr := s.lookup(tt.service + ".Add"); !errors.Is(lerr, ErrUnknownMethod) {
				t.Errorf("after the refusal, %s.Add is published (lookup: %v)", tt.service, lerr)
			}
		})
	}
}

// TestOutsideTransactionDeclaresMethods: OutsideTransaction with no names
// accepts every method of the service, with names only those methods; a
// name that is no published method, or one of a method taking a context,
// is refused.
func TestOutsideTransactionDeclaresMethods(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opts    []RegisterOption
		wantErr string // "" for success
	}{
		{"the whole service", []RegisterOption{OutsideTransaction()}, ""},
		{"each method", []RegisterOption{OutsideTransaction("Double", "Note")}, ""},
		{"in two options", []RegisterOption{OutsideTransaction("Double"), OutsideTransaction("Note")}, ""},
		{"one of two", []RegisterOption{OutsideTransaction("Double")}, `Till.Note takes no context.Context`},
		{"a misspelt name", []RegisterOption{OutsideTransaction("Double", "Nite")}, `OutsideTransaction("Nite"): Till has no published method Nite`},
		{"a method with a context", []RegisterOption{OutsideTransaction("Add")}, `OutsideTransaction("Add"): Till.Add takes a context.Context`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newFileServer(t, withStore)
			err := s.Register(Till{}, tt.opts...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Register: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Register: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestServerWithoutStoreTakesMethodsWithoutContext: the rule is the durable
// store's; a server without one registers such methods as net/rpc does,
// and a misspelt OutsideTransaction name is still refused.
func TestServerWithoutStoreTakesMethodsWithoutContext(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	defer s.Close()
	if err := s.Register(Till{}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := s.RegisterName("Other", Till{}, OutsideTransaction("Nite")); err == nil {
		t.Fatal("OutsideTransaction with a name the service lacks was accepted")
	}
}

// TestMethodOutsideTransactionRunsExactlyOnceCalls: methods declared with
// OutsideTransaction serve exactly-once calls beside the service's
// transactional ones, over TCP.
func TestMethodOutsideTransactionRunsExactlyOnceCalls(t *testing.T) {
	s := newFileServer(t, withStore)
	if err := s.Register(Till{}, OutsideTransaction("Double", "Note")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() {
		s.Close()
		<-done
	}()
	ctx := context.Background()
	c, err := Dial(ctx, "tcp", l.Addr().String(), WithSemantics(semantics.ExactlyOnce()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tt := range []struct {
		method string
		arg    int
		want   int
	}{{"Till.Add", 5, 5}, {"Till.Double", 21, 42}, {"Till.Note", 7, 7}, {"Till.Add", 1, 6}} {
		var reply int
		if err := c.Call(ctx, tt.method, tt.arg, &reply); err != nil || reply != tt.want {
			t.Fatalf("%s(%d) = %d, %v; want %d", tt.method, tt.arg, reply, err, tt.want)
		}
	}
}
