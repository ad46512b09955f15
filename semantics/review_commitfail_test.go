//go:build linux

package semantics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
)

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

// TestReviewFailedCommitOfADuplicateFailsTheStore pins that every failed
// commit stops the store, as the contract says ("After a failed commit the
// store refuses every call until restart"), including the commit of a call
// answered from a record the store already held (a table and store that
// disagree): that transaction writes too (the session's ack and activity),
// and after it failed, what is on disk is only known after a restart. The
// store used to treat it as a plain refusal and go on running methods.
func TestReviewFailedCommitOfADuplicateFailsTheStore(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "s.db")
		st := openStore(t, path, &BoltConfig{NoBatch: noBatch})
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
		if !errors.Is(err, ErrStoreFailed) || !errors.Is(err, ErrRejected) || runs.Load() != 0 {
			t.Fatalf("noBatch=%v: call after a failed commit: %v, ran %d times; want ErrStoreFailed, not run", noBatch, err, runs.Load())
		}
	}
}
