//go:build linux

package semantics

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestFailedCommitIsMaybeExecutedAndFailsTheStore covers the commits added
// for the rollback rule: a call without a header (Transact) and the record
// of a call whose method returned an application error (committed without
// its writes). Either failed commit is reported as may-have-executed, and
// the store then refuses every call, of either kind, without running it.
func TestFailedCommitIsMaybeExecutedAndFailsTheStore(t *testing.T) {
	tests := []struct {
		name string
		call func(st *BoltStore, runs *atomic.Int32) error
	}{
		{"transact", func(st *BoltStore, runs *atomic.Int32) error {
			_, err := st.Transact(context.Background(), setKey("k", "v", runs))
			return err
		}},
		{"record of an application error", func(st *BoltStore, runs *atomic.Int32) error {
			_, err := st.Execute(context.Background(), storeHdr(st, 1, 1, 1), "Svc.Set", setKeyThenFail("k", "v", runs))
			return err
		}},
	}
	for _, mode := range batchModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "s.db")
				st := openStore(t, path, &BoltConfig{NoBatch: mode.noBatch})
				breakWrites(t, path)
				var runs atomic.Int32
				err := tt.call(st, &runs)
				if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, ErrStoreFailed) || ClassOf(err) != ClassMaybeExecuted {
					t.Fatalf("failed commit: %v (class %v), want ErrMaybeExecuted and ErrStoreFailed", err, ClassOf(err))
				}
				ran := runs.Load()
				_, err = st.Transact(context.Background(), setKey("k2", "v", &runs))
				if !errors.Is(err, ErrStoreFailed) || !errors.Is(err, ErrRejected) {
					t.Fatalf("Transact after a failed commit: %v, want ErrStoreFailed, rejected", err)
				}
				_, err = st.Execute(context.Background(), storeHdr(st, 2, 1, 1), "Svc.Set", setKey("k3", "v", &runs))
				if !errors.Is(err, ErrStoreFailed) || !errors.Is(err, ErrRejected) {
					t.Fatalf("Execute after a failed commit: %v, want ErrStoreFailed, rejected", err)
				}
				if runs.Load() != ran {
					t.Fatal("a method ran after a failed commit")
				}
			})
		}
	}
}
