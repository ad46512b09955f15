package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
	"go.etcd.io/bbolt"
)

var svcBucket = []byte("svc")

func openStore(t *testing.T, path string, cfg *Config) *Store {
	t.Helper()
	st, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// setKey is a method body: it writes key=val in the call's transaction and
// replies with val.
func setKey(key, val string, runs *atomic.Int32) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		if runs != nil {
			runs.Add(1)
		}
		tx := TxOf(ctx)
		if tx == nil {
			return nil, errors.New("no transaction in the context")
		}
		b, err := tx.CreateBucketIfNotExists(svcBucket)
		if err != nil {
			return nil, err
		}
		reply := val
		return &reply, b.Put([]byte(key), []byte(val))
	}
}

func readKey(t *testing.T, st *Store, key string) string {
	t.Helper()
	var v string
	err := st.View(context.Background(), func(tx *bbolt.Tx) error {
		if b := tx.Bucket(svcBucket); b != nil {
			v = string(b.Get([]byte(key)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func storeHdr(st *Store, client, seq, ack uint64) semantics.Header {
	return semantics.Header{Client: semantics.ClientID{Lo: client}, Seq: seq, Ack: ack, Epoch: st.Epoch()}
}

// storedString decodes an outcome's reply, stored or live, as a *string.
func storedString(t *testing.T, out semantics.Outcome) string {
	t.Helper()
	switch r := out.Reply.(type) {
	case *string:
		return *r
	case *semantics.StoredReply:
		var s string
		if err := r.Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("reply of type %T", out.Reply)
	return ""
}

func TestStoreRestoresAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openStore(t, path, nil)
	ctx := context.Background()
	epoch := st.Epoch()
	if !st.Table().Durable() || st.Table().Store() != semantics.Store(st) || st.Table().Epoch() != epoch {
		t.Fatal("the store's table is not durable, or not the store's, or has another epoch")
	}
	if out, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKey("a", "1", nil)); err != nil || storedString(t, out) != "1" {
		t.Fatalf("Execute: %v, %v", out, err)
	}
	boom := func(ctx context.Context) (any, error) { return new(string), errors.New("boom") }
	if out, err := st.Execute(ctx, storeHdr(st, 1, 2, 1), "Svc.Fail", boom); err != nil || out.Err == nil {
		t.Fatalf("Execute of a failing method: %v, %v", out, err)
	}
	// Client 2 acknowledges its first call with its second: the first
	// record is deleted, and only the session's durable ack remembers it.
	for seq := uint64(1); seq <= 2; seq++ {
		if _, err := st.Execute(ctx, storeHdr(st, 2, seq, seq), "Svc.Set", setKey("b", "2", nil)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	st2 := openStore(t, path, nil)
	if st2.Epoch() != epoch {
		t.Fatalf("epoch %x after reopen, want %x", st2.Epoch(), epoch)
	}
	if got := readKey(t, st2, "a"); got != "1" {
		t.Fatalf("service state after reopen: %q", got)
	}
	tb := st2.Table()
	tk, err := tb.Begin(ctx, storeHdr(st2, 1, 1, 1))
	if err != nil || tk.Run() {
		t.Fatalf("restored call: run=%v err=%v, want a cached answer", tk != nil && tk.Run(), err)
	}
	if got := storedString(t, tk.Cached()); got != "1" {
		t.Fatalf("restored reply %q, want 1", got)
	}
	if sr := tk.Cached().Reply.(*semantics.StoredReply); sr.Method != "Svc.Set" {
		t.Fatalf("restored method %q", sr.Method)
	}
	tk, err = tb.Begin(ctx, storeHdr(st2, 1, 2, 1))
	if err != nil || tk.Run() || !errors.Is(tk.Cached().Err, semantics.ErrApplication) || tk.Cached().Err.Error() != "boom" {
		t.Fatalf("restored failed call: %v, %+v", err, tk)
	}
	// Client 2's acknowledged call is stale, not run again although its
	// record is gone; its last call is answered; its next one runs.
	if _, err := tb.Begin(ctx, storeHdr(st2, 2, 1, 1)); !errors.Is(err, semantics.ErrStale) {
		t.Fatalf("acknowledged call of a restored session: %v, want semantics.ErrStale", err)
	}
	if tk, err := tb.Begin(ctx, storeHdr(st2, 2, 2, 2)); err != nil || tk.Run() {
		t.Fatalf("last call of a restored session: %v, want a cached answer", err)
	}
	if tk, err := tb.Begin(ctx, storeHdr(st2, 2, 3, 3)); err != nil || !tk.Run() {
		t.Fatalf("next call of a restored session: %v", err)
	}
	if got := tb.Stats().Restored; got != 3 {
		t.Fatalf("Restored = %d, want 3", got)
	}
}

func countRecords(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	st.DB().View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketRecords).Stats().KeyN
		return nil
	})
	return n
}

func TestStoreAckDeletesRecords(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), nil)
	ctx := context.Background()
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := st.Execute(ctx, storeHdr(st, 1, seq, 1), "Svc.Set", setKey("k", "v", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := countRecords(t, st); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
	if _, err := st.Execute(ctx, storeHdr(st, 1, 4, 3), "Svc.Set", setKey("k", "v", nil)); err != nil {
		t.Fatal(err)
	}
	if n := countRecords(t, st); n != 2 { // seqs 3 and 4
		t.Fatalf("%d records after ack 3, want 2", n)
	}
}

func TestStoreDoesNotRerun(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), nil)
	ctx := context.Background()
	var runs atomic.Int32
	for i := 0; i < 2; i++ {
		out, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKey("k", "v", &runs))
		if err != nil || storedString(t, out) != "v" {
			t.Fatalf("Execute %d: %v %v", i, out, err)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("method ran %d times for one call", runs.Load())
	}
	// A late duplicate of an acknowledged call is refused, not run.
	if _, err := st.Execute(ctx, storeHdr(st, 1, 5, 5), "Svc.Set", setKey("k", "v", &runs)); err != nil {
		t.Fatal(err)
	}
	_, err := st.Execute(ctx, storeHdr(st, 1, 2, 2), "Svc.Set", setKey("k", "late", &runs))
	if !errors.Is(err, semantics.ErrStale) || runs.Load() != 2 || readKey(t, st, "k") != "v" {
		t.Fatalf("late call: %v, runs %d, k=%q; want semantics.ErrStale and no run", err, runs.Load(), readKey(t, st, "k"))
	}
}

func TestStoreRollsBackUncommittable(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), nil)
	bad := func(ctx context.Context) (any, error) {
		if _, err := setKey("k", "written", nil)(ctx); err != nil {
			return nil, err
		}
		return &struct{ C chan int }{}, nil // gob cannot encode it
	}
	_, err := st.Execute(context.Background(), storeHdr(st, 1, 1, 1), "Svc.Bad", bad)
	if !errors.Is(err, semantics.ErrRejected) {
		t.Fatalf("Execute with an unencodable reply: %v, want semantics.ErrRejected", err)
	}
	if v := readKey(t, st, "k"); v != "" || countRecords(t, st) != 0 {
		t.Fatalf("rolled-back call left k=%q and %d records", v, countRecords(t, st))
	}
	// The store still works.
	if _, err := st.Execute(context.Background(), storeHdr(st, 1, 1, 1), "Svc.Set", setKey("k", "v", nil)); err != nil {
		t.Fatal(err)
	}
}

func TestStoreClosed(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"), nil)
	st.Close()
	var runs atomic.Int32
	_, err := st.Execute(context.Background(), storeHdr(st, 1, 1, 1), "Svc.Set", setKey("k", "v", &runs))
	if !errors.Is(err, semantics.ErrRejected) || runs.Load() != 0 {
		t.Fatalf("Execute on a closed store: %v, runs %d", err, runs.Load())
	}
}

// TestStoreGroupCommit checks that concurrent calls share transactions
// when batching is on, and do not when it is off.
func TestStoreGroupCommit(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		st := openStore(t, filepath.Join(t.TempDir(), "s.db"), &Config{NoBatch: noBatch, MaxBatchDelay: 50 * time.Millisecond, NoSync: true})
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
				_, err := st.Execute(context.Background(), storeHdr(st, uint64(i+1), 1, 1), "Svc.Set",
					func(ctx context.Context) (any, error) {
						mu.Lock()
						txs[TxOf(ctx).ID()] = true
						mu.Unlock()
						return new(string), nil
					})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if countRecords(t, st) != n {
			t.Fatalf("%d records, want %d", countRecords(t, st), n)
		}
		if noBatch && len(txs) != n {
			t.Errorf("NoBatch: %d transactions for %d calls", len(txs), n)
		}
		if !noBatch && len(txs) >= n {
			t.Errorf("batching: %d transactions for %d concurrent calls; none shared", len(txs), n)
		}
	}
}

func TestStoreSweepsIdleSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	clk := newFakeClock()
	cfg := &Config{Table: semantics.TableConfig{Lease: time.Minute, Now: clk.Now}}
	st := openStore(t, path, cfg)
	ctx := context.Background()
	if _, err := st.Execute(ctx, storeHdr(st, 1, 1, 1), "Svc.Set", setKey("k", "v", nil)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Minute + time.Second) // past twice the lease
	if _, err := st.Execute(ctx, storeHdr(st, 2, 1, 1), "Svc.Set", setKey("k", "v", nil)); err != nil {
		t.Fatal(err)
	}
	if n := countRecords(t, st); n != 1 {
		t.Fatalf("%d records, want only client 2's", n)
	}
	st.Close()
	st2 := openStore(t, path, cfg)
	if _, err := st2.Table().Begin(ctx, storeHdr(st2, 1, 2, 2)); !errors.Is(err, semantics.ErrSessionExpired) {
		t.Fatalf("swept session after reopen: %v, want semantics.ErrSessionExpired", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 2000)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bbolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err })
	db.Close()
	tests := []struct {
		name, path, want string
	}{
		{"directory under a file", filepath.Join(garbage, "s.db"), "creating the store's directory"},
		{"not bbolt", garbage, "not a usable bbolt database"},
		{"empty file", empty, "exists but is empty"},
		{"another application's bbolt", foreign, "not a semrpc store"},
		{"a directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Open(tt.path, nil)
			if err == nil {
				st.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
		})
	}
	t.Run("missing directory is created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "s.db")
		st := openStore(t, path, nil)
		if st.Path() != path {
			t.Fatalf("Path() = %q, want %q", st.Path(), path)
		}
		fi, err := os.Stat(filepath.Dir(path))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("directory: %v, %v; want a directory with mode 0700", fi, err)
		}
	})
	t.Run("locked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.db")
		openStore(t, path, nil)
		_, err := Open(path, &Config{LockTimeout: 50 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "locked") {
			t.Fatalf("second open: %v, want locked", err)
		}
	})
}

func TestDecodeRecordMalformed(t *testing.T) {
	good := encodeRecord("Svc.M", errors.New("e"), []byte{1, 2, 3})
	out, method, err := decodeRecord(good)
	if err != nil || method != "Svc.M" || out.Err.Error() != "e" || string(out.Reply.(*semantics.StoredReply).Data) != "\x01\x02\x03" {
		t.Fatalf("round trip: %+v %q %v", out, method, err)
	}
	for i := 0; i < len(good); i++ {
		if i == 0 || i > 1+1+5+1 { // truncations past the error text still parse
			continue
		}
		if _, _, err := decodeRecord(good[:i]); err == nil {
			t.Errorf("truncated at %d: no error", i)
		}
	}
	for _, b := range [][]byte{nil, {9}, {recordFormat, 200}, {recordFormat, 0, 7}} {
		if _, _, err := decodeRecord(b); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
}

// TestOpenTruncated pins that a store file cut short (a damaged
// disk, a bad copy) is an error at open, not a crash or an empty store.
func TestOpenTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openStore(t, path, &Config{NoSync: true})
	ctx := context.Background()
	for i := uint64(1); i <= 300; i++ {
		if _, err := st.Execute(ctx, storeHdr(st, i, 1, 1), "Svc.Set", setKey(strings.Repeat("k", 50)+string(rune('a'+i%26))+string(rune(i)), strings.Repeat("v", 500), nil)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh file each time: a panic inside bbolt.Open leaves the file
	// locked until the process exits.
	for _, size := range []int{len(whole) / 2, len(whole) / 4, 3 * 4096, 100} {
		cut := filepath.Join(t.TempDir(), "cut.db")
		if err := os.WriteFile(cut, whole[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(cut, &Config{LockTimeout: 50 * time.Millisecond})
		if err == nil {
			st.Close()
			t.Fatalf("truncated to %d of %d bytes: opened", size, len(whole))
		}
		if strings.Contains(err.Error(), "locked") {
			t.Fatalf("truncated to %d: %v", size, err)
		}
		t.Logf("truncated to %d: %v", size, err)
	}
}
