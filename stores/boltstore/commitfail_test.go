//go:build linux

package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// TestFailedCommitIsMaybeExecutedAndFailsTheStore covers the commits added
// for the rollback rule: a call without a header (Transact) and the record
// of a call whose method returned an application error (committed without
// its writes). Either failed commit is reported as may-have-executed, and
// the store then refuses every call, of either kind, without running it.
func TestFailedCommitIsMaybeExecutedAndFailsTheStore(t *testing.T) {
	tests := []struct {
		name string
		call func(st *Store, runs *atomic.Int32) error
	}{
		{"transact", func(st *Store, runs *atomic.Int32) error {
			_, err := st.Transact(context.Background(), setKey("k", "v", runs))
			return err
		}},
		{"record of an application error", func(st *Store, runs *atomic.Int32) error {
			_, err := st.Execute(context.Background(), storeHdr(st, 1, 1, 1), "Svc.Set", setKeyThenFail("k", "v", runs))
			return err
		}},
	}
	for _, mode := range batchModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "s.db")
				st := openStore(t, path, &Config{NoBatch: mode.noBatch})
				breakWrites(t, path)
				var runs atomic.Int32
				err := tt.call(st, &runs)
				if !errors.Is(err, semantics.ErrMaybeExecuted) || !errors.Is(err, semantics.ErrStoreFailed) || semantics.ClassOf(err) != semantics.ClassMaybeExecuted {
					t.Fatalf("failed commit: %v (class %v), want semantics.ErrMaybeExecuted and semantics.ErrStoreFailed", err, semantics.ClassOf(err))
				}
				ran := runs.Load()
				_, err = st.Transact(context.Background(), setKey("k2", "v", &runs))
				if !errors.Is(err, semantics.ErrStoreFailed) || !errors.Is(err, semantics.ErrRejected) {
					t.Fatalf("Transact after a failed commit: %v, want semantics.ErrStoreFailed, rejected", err)
				}
				_, err = st.Execute(context.Background(), storeHdr(st, 2, 1, 1), "Svc.Set", setKey("k3", "v", &runs))
				if !errors.Is(err, semantics.ErrStoreFailed) || !errors.Is(err, semantics.ErrRejected) {
					t.Fatalf("Execute after a failed commit: %v, want semantics.ErrStoreFailed, rejected", err)
				}
				if runs.Load() != ran {
					t.Fatal("a method ran after a failed commit")
				}
			})
		}
	}
}

// breakWrites makes every later write to the store's file fail (EBADF), as a
// failing disk would, by putting a read-only descriptor of the same file in
// place of bbolt's. Reads go through bbolt's memory map and keep working.
func breakWrites(t *testing.T, path string) {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == int(ro.Fd()) {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == want {
			if err := syscall.Dup3(int(ro.Fd()), fd, syscall.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("the store's file descriptor was not found")
}

// Every failed commit stops the store, as the contract says ("After a
// failed commit the store refuses every call until restart"), including the
// commit of a call answered from a record the store already held (a table
// and store that disagree): that transaction writes too (the session's ack
// and activity), and after it failed, what is on disk is only known after a
// restart. Taken for a plain refusal, it let the store go on running
// methods.
func TestFailedCommitOfADuplicateFailsTheStore(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "s.db")
		st := openStore(t, path, &Config{NoBatch: noBatch})
		ctx := context.Background()
		if _, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKey("k", "v", nil)); err != nil {
			t.Fatal(err)
		}
		breakWrites(t, path)
		var runs atomic.Int32
		// The same call again: answered from its record, in a transaction
		// whose commit fails.
		if _, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKey("k", "v", &runs)); err == nil {
			t.Fatalf("noBatch=%v: a failed commit reported success", noBatch)
		}
		if runs.Load() != 0 {
			t.Fatalf("noBatch=%v: a recorded call ran again", noBatch)
		}
		_, err := st.Execute(ctx, storeHdr(st, 2, 1, 1), "Svc.Set", setKey("k2", "v2", &runs))
		if !errors.Is(err, semantics.ErrStoreFailed) || !errors.Is(err, semantics.ErrRejected) || runs.Load() != 0 {
			t.Fatalf("noBatch=%v: call after a failed commit: %v, ran %d times; want semantics.ErrStoreFailed, not run", noBatch, err, runs.Load())
		}
	}
}
