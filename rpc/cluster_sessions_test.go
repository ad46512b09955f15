package rpc

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

func openTestBolt(t *testing.T, name string) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the servers on it: cleanups run last first
	return st
}

// TestDialClusterEveryPolicySpreadsOverTheServersInRotation: with one
// server of three out of rotation, 300 sequential calls go 150 / 150 to
// the two that are up, under at-least-once, at-most-once and exactly-once
// alike: an at-most-once call is balanced like any other, in the session
// the client holds with the server it goes to.
func TestDialClusterEveryPolicySpreadsOverTheServersInRotation(t *testing.T) {
	tests := []struct {
		name     string
		policy   semantics.Policy
		durable  bool
		sessions uint64 // opened by the client: one per server it used
	}{
		{"at-least-once", semantics.AtLeastOnce(), false, 0},
		{"at-most-once", semantics.AtMostOnce(), false, 2},
		{"exactly-once", semantics.ExactlyOnce(), true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var nodes []*clusterNode
			for _, name := range []string{"a", "b", "c"} {
				var opts []Option
				if tt.durable {
					opts = append(opts, WithDurableStore(openTestBolt(t, name+".db")))
				}
				nodes = append(nodes, startClusterNode(t, name, opts...))
			}
			nodes[1].stop()
			// Eager: b is found down at dial; an hour's backoff keeps it out.
			c := dialCluster(t, nodes, WithSemantics(tt.policy), WithEagerDial(), WithRedialBackoff(time.Hour, time.Hour))
			const calls = 300
			ran := map[string]int{}
			for i := range calls {
				var who string
				if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				ran[who]++
			}
			t.Logf("%s: a %d, b %d, c %d", tt.name, ran["a"], ran["b"], ran["c"])
			if ran["a"] != calls/2 || ran["c"] != calls/2 || ran["b"] != 0 {
				t.Errorf("%d sequential calls ran a %d, b (down) %d, c %d; want %d, 0, %d",
					calls, ran["a"], ran["b"], ran["c"], calls/2, calls/2)
			}
			if st := c.Stats(); st.SessionsOpened != tt.sessions || st.SessionResets != 0 {
				t.Errorf("sessions opened %d, reset %d; want %d, 0", st.SessionsOpened, st.SessionResets, tt.sessions)
			}
		})
	}
}

// TestDialClusterConcurrentAtMostOnceCallsSpreadOverTheServers: calls of
// many goroutines of one client reach every server, each in that
// server's session.
func TestDialClusterConcurrentAtMostOnceCallsSpreadOverTheServers(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b"), startClusterNode(t, "c")}
	c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce()))
	const callers, each = 8, 30
	errs := make(chan error, callers)
	for g := range callers {
		go func() {
			for i := range each {
				var who string
				if err := c.Call(ctxT(t), "Node.Name", g*each+i, &who); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	total := int64(0)
	for _, n := range nodes {
		got := n.svc.calls.Load()
		total += got
		t.Logf("server %s ran %d of %d calls", n.svc.name, got, callers*each)
		if got == 0 {
			t.Errorf("server %s ran none of %d concurrent at-most-once calls", n.svc.name, callers*each)
		}
	}
	if total != callers*each {
		t.Errorf("the servers ran %d calls, want %d", total, callers*each)
	}
	c.Close()
	for _, n := range nodes {
		if st := n.srv.Table().Stats(); st.Opened != 1 || st.Sessions != 0 {
			t.Errorf("server %s: sessions opened %d, live after Close %d; want 1, 0", n.svc.name, st.Opened, st.Sessions)
		}
	}
}

// domainBolt is a bbolt store that says it is shared: servers given the
// same domainBolt share its table, so each sees the sessions and records
// of the others, as replicas on one database do.
type domainBolt struct {
	*boltstore.Store
	name string
}

func (d domainBolt) Domain() string { return d.name }

var _ semantics.DomainStore = domainBolt{}

// Ledger is a durable test service: Add adds to a count kept in the store,
// and answers which server ran it and the count after it.
type Ledger struct {
	name string
	st   *boltstore.Store
	runs atomic.Int64 // Add's runs on this server
	// hold, if set, is called as Add starts, before its write.
	hold func(ctx context.Context)
}

func (s *Ledger) Add(ctx context.Context, by int, reply *string) error {
	s.runs.Add(1)
	if s.hold != nil {
		s.hold(ctx)
	}
	return s.st.Update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("ledger"))
		if err != nil {
			return err
		}
		n := 0
		if v := b.Get([]byte("n")); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		n += by
		*reply = fmt.Sprintf("%s:%d", s.name, n)
		return b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, uint64(n)))
	})
}

func ledgerCount(t *testing.T, st *boltstore.Store) int {
	t.Helper()
	n := 0
	err := st.View(context.Background(), func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("ledger")); b != nil {
			if v := b.Get([]byte("n")); len(v) == 8 {
				n = int(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// replicaRig is two servers, each behind a gate the test can shut. The
// first Ledger.Add of the rig is held until the test releases it: after
// it ran and committed (its reply held), or, with inMethod, as the method
// starts, before it writes.
type replicaRig struct {
	srvs    [2]*clusterNode
	ledger  [2]*Ledger
	gates   [2]*gateProxy
	stores  [2]*boltstore.Store
	held    chan int         // the index of the server holding the first Add
	reply   chan struct{}    // closed to let the held Add go
	arrived [2]chan struct{} // a Ledger.Add request reached server i
}

// startReplicaRig starts the two servers, on stores[i] made durable by
// wrap(i) (the same store for both to share one domain).
func startReplicaRig(t *testing.T, stores [2]*boltstore.Store, wrap func(i int) semantics.Store, inMethod bool, opts ...Option) *replicaRig {
	r := &replicaRig{stores: stores, held: make(chan int, 1), reply: make(chan struct{})}
	var armed atomic.Bool
	armed.Store(true)
	for i := range 2 {
		name := string(rune('a' + i))
		r.arrived[i] = make(chan struct{}, 16)
		holdHere := func(ctx context.Context) {
			if armed.CompareAndSwap(true, false) {
				r.held <- i
				select {
				case <-r.reply:
				case <-ctx.Done():
				}
			}
		}
		intercept := func(ctx context.Context, call *CallInfo, next Handler) error {
			if call.ServiceMethod != "Ledger.Add" {
				return next(ctx, call)
			}
			select {
			case r.arrived[i] <- struct{}{}:
			default:
			}
			err := next(ctx, call)
			if !inMethod {
				holdHere(ctx)
			}
			return err
		}
		r.srvs[i] = startClusterNode(t, name, append([]Option{WithDurableStore(wrap(i)), WithServerInterceptor(intercept)}, opts...)...)
		r.ledger[i] = &Ledger{name: name, st: stores[i]}
		if inMethod {
			r.ledger[i].hold = holdHere
		}
		if err := r.srvs[i].srv.Register(r.ledger[i]); err != nil {
			t.Fatal(err)
		}
		r.gates[i] = startGateProxy(t, r.srvs[i].addr)
	}
	t.Cleanup(func() {
		select {
		case <-r.reply:
		default:
			close(r.reply)
		}
	})
	return r
}

func (r *replicaRig) dial(t *testing.T, p semantics.Policy) *Client {
	return dialCluster(t, []*clusterNode{{addr: r.gates[0].addr}, {addr: r.gates[1].addr}}, WithSemantics(p))
}

// TestDialClusterCallThatMayHaveRunMovesWithinItsDomain: two servers on
// one shared durable store (one exactly-once domain). A call runs and
// commits on one; its server is cut off before the reply leaves (its
// listener and connections shut). The call completes on the other server
// with its original reply, and ran exactly once: the second server
// answered it from the record of the first. It works whether the client
// knew the second server's domain already (a session there) or asks it
// when it needs to: with _semrpc.Health, or, on servers with
// introspection off, with a session handshake of its own.
func TestDialClusterCallThatMayHaveRunMovesWithinItsDomain(t *testing.T) {
	learning := []struct {
		name   string
		warm   bool // a call to each server first: the client holds a session with both
		opts   []Option
		opened uint64 // sessions the shared table opened
	}{
		{"known", true, nil, 2},
		{"asked", false, nil, 1},
		{"asked with a handshake", false, []Option{WithIntrospection(false)}, 2},
	}
	for _, policy := range []semantics.Policy{semantics.ExactlyOnce(), semantics.AtMostOnce()} {
		for _, lt := range learning {
			t.Run(fmt.Sprintf("%v/%s", policy.Kind(), lt.name), func(t *testing.T) {
				st := openTestBolt(t, "shared.db")
				shared := domainBolt{st, "orders"}
				r := startReplicaRig(t, [2]*boltstore.Store{st, st}, func(int) semantics.Store { return shared }, false, lt.opts...)
				c := r.dial(t, policy)
				if lt.warm {
					for i := range 2 {
						var who string
						if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
							t.Fatal(err)
						}
					}
				}
				var reply string
				call := c.Go(ctxT(t), "Ledger.Add", 1, &reply)
				var h int
				select {
				case h = <-r.held:
				case <-call.Done:
					t.Fatalf("the call ended before its reply was held: %v", call.Err)
				case <-ctxT(t).Done():
					t.Fatal("the call never ran")
				}
				base := ledgerCount(t, st) // committed before the reply is held
				r.gates[h].refuse()        // its server is gone: listener and connections
				close(r.reply)             // the reply is written into a closed connection
				<-call.Done
				want := fmt.Sprintf("%s:1", r.srvs[h].svc.name)
				if call.Err != nil || reply != want {
					t.Fatalf("call whose server was cut off after it ran: %q %v; want %q, the original reply", reply, call.Err, want)
				}
				if got := ledgerCount(t, st); got != 1 || base != 1 {
					t.Fatalf("the count is %d (%d when the reply was held); want 1: the call ran exactly once", got, base)
				}
				if n := r.ledger[1-h].runs.Load(); n != 0 {
					t.Fatalf("the second server ran the method %d times; it must answer from the record", n)
				}
				if n := r.ledger[h].runs.Load(); n != 1 {
					t.Fatalf("the first server ran the method %d times, want 1", n)
				}
				for i, st := range c.Servers() {
					if i == h && st.InRotation {
						t.Fatal("the cut-off server is still in rotation; the call did not move because it was down")
					}
					if st.Domain != "orders" {
						t.Errorf("Servers()[%d].Domain = %q, want the domain it named, %q", i, st.Domain, "orders")
					}
				}
				// Close ends every session of the client, those opened on
				// the cut-off server too: the other server of the domain
				// sees them.
				c.Close()
				if st := r.srvs[0].srv.Table().Stats(); st.Sessions != 0 || st.Opened != lt.opened {
					t.Fatalf("the shared table after Close: %d sessions opened, %d live; want %d, none live", st.Opened, st.Sessions, lt.opened)
				}
			})
		}
	}
}

// TestDialClusterCallMovedWithinItsDomainWaitsForTheRunInFlight: the
// call's server is cut off while its method is still running; the attempt
// sent to the other server of the domain finds the call in flight in the
// shared table and waits for it, then answers with its reply. The method
// ran once.
func TestDialClusterCallMovedWithinItsDomainWaitsForTheRunInFlight(t *testing.T) {
	st := openTestBolt(t, "shared.db")
	shared := domainBolt{st, "orders"}
	r := startReplicaRig(t, [2]*boltstore.Store{st, st}, func(int) semantics.Store { return shared }, true)
	c := r.dial(t, semantics.ExactlyOnce())
	var reply string
	call := c.Go(ctxT(t), "Ledger.Add", 1, &reply)
	var h int
	select {
	case h = <-r.held:
	case <-call.Done:
		t.Fatalf("the call ended before it ran: %v", call.Err)
	case <-ctxT(t).Done():
		t.Fatal("the call never ran")
	}
	<-r.arrived[h]      // the request that is running
	r.gates[h].refuse() // cut off while the method runs
	select {
	case <-r.arrived[1-h]: // the retry reached the other server, which waits
	case <-call.Done:
		t.Fatalf("the call ended while its method was running: %q %v", reply, call.Err)
	case <-ctxT(t).Done():
		t.Fatal("the call was never sent to the other server of its domain")
	}
	close(r.reply) // the method goes on, writes and commits
	<-call.Done
	want := fmt.Sprintf("%s:1", r.srvs[h].svc.name)
	if call.Err != nil || reply != want {
		t.Fatalf("call moved while its method ran: %q %v; want %q, the reply of that run", reply, call.Err, want)
	}
	if got := ledgerCount(t, st); got != 1 {
		t.Fatalf("the count is %d, want 1: the call ran exactly once", got)
	}
	if a, b := r.ledger[h].runs.Load(), r.ledger[1-h].runs.Load(); a != 1 || b != 0 {
		t.Fatalf("the method ran %d times on the first server and %d on the second; want 1, 0", a, b)
	}
}

// TestDialClusterCallThatMayHaveRunStaysOutsideOtherDomains: R20 holds
// between servers of different domains, and between servers that name
// none: a call that may have run on a server that is cut off is never
// sent to the other, and ends as may-have-executed when its context ends.
func TestDialClusterCallThatMayHaveRunStaysOutsideOtherDomains(t *testing.T) {
	tests := []struct {
		name string
		wrap func(st *boltstore.Store, i int) semantics.Store
	}{
		{"different domains", func(st *boltstore.Store, i int) semantics.Store {
			return domainBolt{st, fmt.Sprintf("orders-%d", i)}
		}},
		{"no domain", func(st *boltstore.Store, _ int) semantics.Store { return st }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores := [2]*boltstore.Store{openTestBolt(t, "a.db"), openTestBolt(t, "b.db")}
			r := startReplicaRig(t, stores, func(i int) semantics.Store { return tt.wrap(stores[i], i) }, false)
			c := r.dial(t, semantics.ExactlyOnce())
			for i := range 2 { // both servers known, so that their domains are
				var who string
				if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
			defer cancel()
			var reply string
			call := c.Go(ctx, "Ledger.Add", 1, &reply)
			h := <-r.held
			r.gates[h].refuse()
			close(r.reply)
			<-call.Done
			if !errors.Is(call.Err, ErrMaybeExecuted) {
				t.Fatalf("call that may have run, its server cut off: %v; want ErrMaybeExecuted", call.Err)
			}
			if n := r.ledger[1-h].runs.Load(); n != 0 || ledgerCount(t, stores[1-h]) != 0 {
				t.Fatalf("the other server ran the method %d times; it cannot see the call's record", n)
			}
			if got := ledgerCount(t, stores[h]); got != 1 {
				t.Fatalf("the first server's count is %d, want 1", got)
			}
		})
	}
}

func TestServerSaysItsDomainAtOpen(t *testing.T) {
	st := openTestBolt(t, "d.db")
	tests := []struct {
		name  string
		opts  []Option
		want  string
		durab bool
	}{
		{"in memory", nil, "", false},
		{"durable, no domain", []Option{WithDurableStore(openTestBolt(t, "plain.db"))}, "", true},
		{"durable, domain", []Option{WithDurableStore(domainBolt{st, "orders"})}, "orders", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := NewServer(tt.opts...)
			defer srv.Close()
			rep, err := srv.open(&OpenArgs{Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Domain != tt.want || rep.Durable != tt.durab {
				t.Fatalf("OpenReply domain %q durable %v; want %q %v", rep.Domain, rep.Durable, tt.want, tt.durab)
			}
		})
	}
}

// TestDialClusterSessionHandshakeGoesToItsServerOnly: a new at-most-once
// call whose chosen server refuses connections is not sent; it moves, with
// its session, to a server that is up, and the down server's session
// handshake is never sent anywhere else.
func TestDialClusterSessionHandshakeGoesToItsServerOnly(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b"), startClusterNode(t, "c")}
	nodes[1].stop() // not eager: b stays in rotation until a call finds it refusing
	c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce()), WithRedialBackoff(time.Hour, time.Hour))
	for i := range 10 {
		var who string
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if who == "b" {
			t.Fatalf("call %d ran on the stopped server", i)
		}
	}
	if c.Servers()[1].InRotation {
		t.Fatal("no call found b refusing: the test did not send a handshake to it")
	}
	st := c.Stats()
	if st.SessionsOpened != 2 || st.SessionResets != 0 {
		t.Fatalf("sessions opened %d, reset %d; want 2 (a and c), 0", st.SessionsOpened, st.SessionResets)
	}
	for _, n := range []*clusterNode{nodes[0], nodes[2]} {
		if got := n.srv.Table().Stats().Opened; got != 1 {
			t.Errorf("server %s opened %d sessions, want 1", n.svc.name, got)
		}
	}
}

// TestDialClusterTLSRefusedServerLeavesRotationUnderEveryPolicy: a server
// whose certificate fails verification leaves the rotation for calls in
// sessions too, and when every server fails it, the call fails at once,
// not executed, without retries.
func TestDialClusterTLSRefusedServerLeavesRotationUnderEveryPolicy(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	trusted := startTLSNode(t, "trusted", &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}})
	untrusted := startTLSNode(t, "untrusted", &tls.Config{Certificates: []tls.Certificate{otherCA.issue(t, "server", true)}})
	cfg := WithTLS(&tls.Config{RootCAs: ca.pool})
	for _, p := range []semantics.Policy{semantics.AtLeastOnce(), semantics.AtMostOnce()} {
		t.Run(p.Kind().String(), func(t *testing.T) {
			c := dialCluster(t, []*clusterNode{untrusted, trusted}, cfg, WithSemantics(p))
			for i := range 4 {
				var who string
				if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil || who != "trusted" {
					t.Fatalf("call %d: %q %v; want it run by the trusted server", i, who, err)
				}
			}

			c = dialCluster(t, []*clusterNode{untrusted}, cfg, WithSemantics(p))
			var who string
			err := c.Call(ctxT(t), "Node.Name", 0, &who)
			if !errors.Is(err, ErrNotExecuted) || !semantics.IsPermanent(err) {
				t.Fatalf("call with every server refused: %v, want permanent, not executed", err)
			}
			if st := c.Stats().Run; st.Retries != 0 {
				t.Fatalf("%d retries after every server failed verification, want none: %v", st.Retries, err)
			}
		})
	}
}
