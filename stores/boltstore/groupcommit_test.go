package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// queued reports how many calls wait in st's commit queue.
func queued(st *Store) int {
	st.cmu.Lock()
	defer st.cmu.Unlock()
	return len(st.queue)
}

// waitQueued yields until n calls wait in st's commit queue.
func waitQueued(t *testing.T, st *Store, n int) {
	t.Helper()
	for queued(st) < n {
		runtime.Gosched()
	}
}

// TestGroupCommitTakesEverythingQueuedDuringACommit pins the committer of
// the default store (no batch delay): calls that arrive while a
// transaction runs all share the next one, and a call that fails in it runs
// again alone without taking the others' writes with it.
func TestGroupCommitTakesEverythingQueuedDuringACommit(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoSync: true})
			ctx := context.Background()
			release := make(chan struct{})
			firstTx := make(chan int, 1)
			first := make(chan error, 1)
			go func() {
				_, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", func(ctx context.Context) (any, error) {
					firstTx <- TxOf(ctx).ID()
					<-release // holds the transaction open while the others queue
					return setKey("k0", "v", nil)(ctx)
				})
				first <- err
			}()
			blocked := <-firstTx

			const n = 16
			var (
				mu  sync.Mutex
				ids = make([]int, n) // the transaction of each call's last run
				wg  sync.WaitGroup
			)
			outs := make([]semantics.Outcome, n)
			errs := make([]error, n)
			for i := 1; i <= n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprint("k", i)
					fail := failing && i == n/2
					outs[i-1], errs[i-1] = st.Execute(ctx, storeHdr(st, uint64(i+1), 1, 1), "Svc.Set", func(ctx context.Context) (any, error) {
						if fail {
							return setKeyThenFail(key, "v", nil)(ctx)
						}
						reply, err := setKey(key, "v", nil)(ctx)
						mu.Lock()
						ids[i-1] = TxOf(ctx).ID()
						mu.Unlock()
						return reply, err
					})
				}()
			}
			waitQueued(t, st, n)
			close(release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			txs := make(map[int]int) // transaction id → calls whose last run was in it
			for i, id := range ids {
				if !failing || i+1 != n/2 {
					txs[id]++
				}
			}
			for i := 1; i <= n; i++ {
				fail := failing && i == n/2
				if errs[i-1] != nil || (outs[i-1].Err != nil) != fail {
					t.Fatalf("call %d: %+v, %v", i, outs[i-1], errs[i-1])
				}
				want := "v"
				if fail {
					want = ""
				}
				if got := readKey(t, st, fmt.Sprint("k", i)); got != want {
					t.Fatalf("k%d = %q, want %q", i, got, want)
				}
			}
			if got := countRecords(t, st); got != n+1 {
				t.Fatalf("%d records, want %d", got, n+1)
			}
			// The calls that succeeded committed in one transaction, not
			// the blocked one's.
			if len(txs) != 1 {
				t.Fatalf("the %d queued calls committed in %d transactions (%v), want 1", n, len(txs), txs)
			}
			for id, calls := range txs {
				want := n
				if failing {
					want = n - 1
				}
				if id == blocked || calls != want {
					t.Fatalf("transaction %d took %d calls (the blocked one was %d), want %d in a later one", id, calls, blocked, want)
				}
			}
			if queued(st) != 0 || st.leading {
				t.Fatalf("after the calls: %d queued, leading %v", queued(st), st.leading)
			}
		})
	}
}

// TestGroupCommitPanicRunsAlone: a method that panics in a shared
// transaction panics on its own caller's goroutine, and the calls that
// shared the transaction commit.
func TestGroupCommitPanicRunsAlone(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoSync: true})
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 3)
	go func() {
		_, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", func(ctx context.Context) (any, error) {
			close(started)
			<-release
			return setKey("a", "v", nil)(ctx)
		})
		done <- err
	}()
	<-started
	go func() {
		_, err := st.Execute(ctx, storeHdr(st, 2, 1, 1), "Svc.Set", setKey("b", "v", nil))
		done <- err
	}()
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		st.Execute(ctx, storeHdr(st, 3, 1, 1), "Svc.Set", func(ctx context.Context) (any, error) {
			panic("boom")
		})
	}()
	waitQueued(t, st, 2)
	close(release)
	if p := <-panicked; p != "boom" {
		t.Fatalf("recovered %v, want the method's panic on its caller's goroutine", p)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b"} {
		if readKey(t, st, k) != "v" {
			t.Fatalf("%s not written", k)
		}
	}
}
