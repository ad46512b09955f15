package boltstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
	"go.etcd.io/bbolt"
)

// setKeyThenFail writes key=val in the call's transaction and then returns
// an application error, with a reply.
func setKeyThenFail(key, val string, runs *atomic.Int32) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		reply, err := setKey(key, val, runs)(ctx)
		if err != nil {
			return nil, err
		}
		return reply, fmt.Errorf("refusing %s after writing it", key)
	}
}

func countSessions(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	st.DB().View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketSessions).Stats().KeyN
		return nil
	})
	return n
}

var batchModes = []struct {
	name    string
	noBatch bool
}{{"batch", false}, {"no batch", true}}

// TestApplicationErrorRollsBackWritesAndKeepsRecord pins the one rule for
// durable methods: an application error rolls back everything the method
// wrote, and the call's completion record, with the error, still commits.
func TestApplicationErrorRollsBackWritesAndKeepsRecord(t *testing.T) {
	for _, mode := range batchModes {
		t.Run(mode.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			st := openStore(t, path, &Config{NoBatch: mode.noBatch, NoSync: true})
			ctx := context.Background()
			var runs atomic.Int32
			out, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKeyThenFail("k", "v", &runs))
			if err != nil || out.Err == nil || storedString(t, out) != "v" {
				t.Fatalf("Execute: %+v %v, want the reply and the application error", out, err)
			}
			if got := readKey(t, st, "k"); got != "" {
				t.Fatalf("k = %q: the failed method's write was committed", got)
			}
			if n := countRecords(t, st); n != 1 {
				t.Fatalf("%d records, want the failed call's", n)
			}
			ranBefore := runs.Load()
			// A retry is answered from the record, and runs nothing.
			out, err = st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKeyThenFail("k", "v", &runs))
			if err != nil || !errors.Is(out.Err, semantics.ErrApplication) || runs.Load() != ranBefore {
				t.Fatalf("retry: %+v %v, ran %d more times; want the recorded error, not run", out, err, runs.Load()-ranBefore)
			}
			// So is one after a restart.
			st.Close()
			st2 := openStore(t, path, nil)
			tk, err := st2.Table().Begin(ctx, storeHdr(st2, 1, 1, 1))
			if err != nil || tk.Run() || tk.Cached().Err == nil || tk.Cached().Err.Error() != "refusing k after writing it" {
				t.Fatalf("after restart: %+v %v, want the recorded error", tk, err)
			}
			if got := readKey(t, st2, "k"); got != "" {
				t.Fatalf("k = %q after restart", got)
			}
		})
	}
}

// TestApplicationErrorsInSharedTransactions mixes calls that succeed and
// calls that fail after writing, all at once: only the successes' writes
// commit, and every call's record does.
func TestApplicationErrorsInSharedTransactions(t *testing.T) {
	for _, mode := range batchModes {
		t.Run(mode.name, func(t *testing.T) {
			st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoBatch: mode.noBatch, NoSync: true, MaxBatchDelay: 20 * time.Millisecond})
			const n = 32
			var wg sync.WaitGroup
			errs := make([]error, n)
			outs := make([]semantics.Outcome, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprint("k", i)
					fn := setKey(key, "v", nil)
					if i%2 == 1 {
						fn = setKeyThenFail(key, "v", nil)
					}
					outs[i], errs[i] = st.Execute(context.Background(), storeHdr(st, uint64(i+1), 1, 1), "Svc.Set", fn)
				}()
			}
			wg.Wait()
			for i := 0; i < n; i++ {
				fails := i%2 == 1
				if errs[i] != nil || (outs[i].Err != nil) != fails {
					t.Fatalf("call %d: %+v %v", i, outs[i], errs[i])
				}
				want := "v"
				if fails {
					want = ""
				}
				if got := readKey(t, st, fmt.Sprint("k", i)); got != want {
					t.Fatalf("k%d = %q, want %q", i, got, want)
				}
			}
			if got := countRecords(t, st); got != n {
				t.Fatalf("%d records, want %d", got, n)
			}
		})
	}
}

func TestTransact(t *testing.T) {
	tests := []struct {
		name    string
		fn      func(ctx context.Context) (any, error)
		wantErr bool   // an application error in the Outcome
		wantK   string // k after the call
	}{
		{"success commits the writes", setKey("k", "v", nil), false, "v"},
		{"an application error rolls the writes back", setKeyThenFail("k", "v", nil), true, ""},
	}
	for _, mode := range batchModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoBatch: mode.noBatch, NoSync: true})
				out, err := st.Transact(context.Background(), tt.fn)
				if err != nil || (out.Err != nil) != tt.wantErr {
					t.Fatalf("Transact: %+v %v", out, err)
				}
				if r, ok := out.Reply.(*string); !ok || *r != "v" {
					t.Fatalf("reply %v, want the method's own", out.Reply)
				}
				if got := readKey(t, st, "k"); got != tt.wantK {
					t.Fatalf("k = %q, want %q", got, tt.wantK)
				}
				if countRecords(t, st) != 0 || countSessions(t, st) != 0 {
					t.Fatal("a call without a header left a record or a session")
				}
			})
		}
	}
}

func TestTransactSharesTransactions(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoSync: true, MaxBatchDelay: 50 * time.Millisecond})
	const n = 32
	var (
		mu  sync.Mutex
		txs = make(map[int]bool)
		wg  sync.WaitGroup
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint("k", i)
			_, err := st.Transact(context.Background(), func(ctx context.Context) (any, error) {
				tx := TxOf(ctx)
				mu.Lock()
				txs[tx.ID()] = true
				mu.Unlock()
				return setKey(key, "v", nil)(ctx)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(txs) >= n {
		t.Errorf("%d transactions for %d concurrent calls; none shared", len(txs), n)
	}
	for i := 0; i < n; i++ {
		if readKey(t, st, fmt.Sprint("k", i)) != "v" {
			t.Fatalf("k%d not written", i)
		}
	}
}

func TestTransactClosedStoreRefuses(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), nil)
	st.Close()
	var runs atomic.Int32
	_, err := st.Transact(context.Background(), setKey("k", "v", &runs))
	if !errors.Is(err, semantics.ErrRejected) || semantics.ClassOf(err) != semantics.ClassRejected || runs.Load() != 0 {
		t.Fatalf("Transact on a closed store: %v, runs %d; want rejected, not run", err, runs.Load())
	}
}

// TestUpdateUsesTheCallsTransaction checks that Update and View with a
// method's ctx work in the call's transaction (and so do not wait for the
// writer lock the call holds), for both kinds of call.
func TestUpdateUsesTheCallsTransaction(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoSync: true})
	method := func(ctx context.Context) (any, error) {
		err := st.Update(ctx, func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(svcBucket)
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		})
		if err != nil {
			return nil, err
		}
		var got string
		err = st.View(ctx, func(tx *bbolt.Tx) error {
			got = string(tx.Bucket(svcBucket).Get([]byte("k")))
			return nil
		})
		return &got, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, run := range []func() (semantics.Outcome, error){
			func() (semantics.Outcome, error) { return st.Transact(context.Background(), method) },
			func() (semantics.Outcome, error) {
				return st.Execute(context.Background(), storeHdr(st, 1, 1, 1), "Svc.M", method)
			},
		} {
			out, err := run()
			if err != nil || out.Err != nil || *out.Reply.(*string) != "v" {
				t.Errorf("%+v %v: want the method's own write read back", out, err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: Update with the call's ctx waited for the writer lock")
	}
}
