package rpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// fileStore is a semantics.Store that is not bbolt, written from the
// recipe in doc/stores.md with semantics' exported API only: its whole
// state (epoch, sessions, completion records and the service's data) is
// one gob file, replaced atomically (write, fsync, rename) at every
// commit. Transactions run one at a time; a method reaches its transaction
// with semantics.TxOf[*fileTx].
type fileStore struct {
	path  string
	table *semantics.Table

	mu     sync.Mutex // serializes transactions; protects following
	st     fileState
	failed bool // a commit failed: refuse everything until reopened
}

type fileState struct {
	Epoch    uint64
	Sessions map[semantics.ClientID]uint64 // durable ack
	Records  []fileRecord
	Data     map[string]int // the service's state
}

type fileRecord struct {
	Client semantics.ClientID
	Seq    uint64
	Method string
	Reply  []byte // gob, alone
	Err    string
	HasErr bool
}

func (r fileRecord) outcome() semantics.Outcome {
	out := semantics.Outcome{Reply: &semantics.StoredReply{Method: r.Method, Data: r.Reply}}
	if r.HasErr {
		out.Err = semantics.RecordedError(r.Err)
	}
	return out
}

// fileTx is a transaction: the service's data, copied, kept if the method
// returns nil.
type fileTx struct{ data map[string]int }

func (tx *fileTx) Get(k string) int    { return tx.data[k] }
func (tx *fileTx) Put(k string, v int) { tx.data[k] = v }

var _ semantics.Store = (*fileStore)(nil)

func openFileStore(path string) (*fileStore, error) {
	s := &fileStore{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		var e [8]byte
		rand.Read(e[:])
		s.st = fileState{Epoch: binary.BigEndian.Uint64(e[:]) | 1, Sessions: map[semantics.ClientID]uint64{}, Data: map[string]int{}}
		if err := s.write(s.st); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s.st); err != nil {
			return nil, fmt.Errorf("file store %s: %w", path, err)
		}
		if s.st.Sessions == nil {
			s.st.Sessions = map[semantics.ClientID]uint64{}
		}
		if s.st.Data == nil {
			s.st.Data = map[string]int{}
		}
	}
	// The table: the store's epoch, its sessions with their acks, and the
	// records not yet acknowledged.
	s.table = semantics.NewTable(&semantics.TableConfig{Epoch: s.st.Epoch, Store: s})
	for id, ack := range s.st.Sessions {
		s.table.RestoreSession(id, ack)
	}
	for _, r := range s.st.Records {
		s.table.Restore(semantics.Header{Client: r.Client, Seq: r.Seq, Ack: 1, Epoch: s.st.Epoch}, r.outcome())
	}
	return s, nil
}

func (s *fileStore) write(st fileState) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(st); err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// commit makes next the store's state. A failed commit may or may not be
// on disk: the store refuses everything until it is reopened.
func (s *fileStore) commit(what string, next fileState) error {
	if err := s.write(next); err != nil {
		s.failed = true
		return semantics.MaybeExecuted(fmt.Errorf("file store: committing %s: %w", what, err))
	}
	s.st = next
	return nil
}

func (s *fileStore) clone() fileState {
	return fileState{Epoch: s.st.Epoch, Sessions: maps.Clone(s.st.Sessions), Records: slices.Clone(s.st.Records), Data: s.st.Data}
}

func (s *fileStore) Table() *semantics.Table { return s.table }

// value reads the service's committed data.
func (s *fileStore) value(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Data[k]
}

func (s *fileStore) OpenSession(id semantics.ClientID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return fmt.Errorf("file store failed: %w", semantics.ErrRejected)
	}
	next := s.clone()
	next.Sessions[id] = 1
	return s.commit("session", next)
}

func (s *fileStore) Execute(ctx context.Context, h semantics.Header, method string, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return semantics.Outcome{}, fmt.Errorf("file store failed: %w", semantics.ErrRejected)
	}
	next := s.clone()
	// Admit: advance the durable ack, dropping the records below it.
	ack := max(next.Sessions[h.Client], 1)
	if h.Ack > ack {
		ack = h.Ack
		next.Records = slices.DeleteFunc(next.Records, func(r fileRecord) bool { return r.Client == h.Client && r.Seq < ack })
	}
	next.Sessions[h.Client] = ack
	if h.Seq < ack {
		return semantics.Outcome{}, fmt.Errorf("seq %d below durable ack %d: %w", h.Seq, ack, semantics.ErrStale)
	}
	for _, r := range next.Records {
		if r.Client == h.Client && r.Seq == h.Seq {
			if err := s.commit("ack", next); err != nil {
				return semantics.Outcome{}, err
			}
			return r.outcome(), nil
		}
	}
	tx := &fileTx{data: maps.Clone(s.st.Data)}
	reply, appErr := fn(semantics.ContextWithTx(ctx, tx))
	if errors.Is(appErr, semantics.ErrMaybeExecuted) {
		return semantics.Outcome{}, appErr // not an answer: nothing recorded
	}
	rec := fileRecord{Client: h.Client, Seq: h.Seq, Method: method}
	if reply != nil {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(reply); err != nil {
			return semantics.Outcome{}, fmt.Errorf("reply of %s: %w: %v", method, semantics.ErrRejected, err)
		}
		rec.Reply = b.Bytes()
	}
	if appErr != nil {
		rec.Err, rec.HasErr = appErr.Error(), true // the method's writes are dropped
	} else {
		next.Data = tx.data
	}
	next.Records = append(next.Records, rec)
	if err := s.commit(fmt.Sprintf("client %v seq %d", h.Client, h.Seq), next); err != nil {
		return semantics.Outcome{}, err
	}
	return semantics.Outcome{Reply: reply, Err: appErr}, nil
}

func (s *fileStore) Transact(ctx context.Context, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return semantics.Outcome{}, fmt.Errorf("file store failed: %w", semantics.ErrRejected)
	}
	tx := &fileTx{data: maps.Clone(s.st.Data)}
	reply, appErr := fn(semantics.ContextWithTx(ctx, tx))
	if appErr != nil {
		return semantics.Outcome{Reply: reply, Err: appErr}, nil
	}
	next := s.clone()
	next.Data = tx.data
	if err := s.commit("call without a header", next); err != nil {
		return semantics.Outcome{}, err
	}
	return semantics.Outcome{Reply: reply}, nil
}

// Tally is a durable service on the file store.
type Tally struct{}

func (Tally) Add(ctx context.Context, by int, reply *int) error {
	tx, ok := semantics.TxOf[*fileTx](ctx)
	if !ok {
		return errors.New("no file store transaction")
	}
	tx.Put("n", tx.Get("n")+by)
	*reply = tx.Get("n")
	return nil
}

// AddThenRefuse writes, then fails: its write must not last.
func (Tally) AddThenRefuse(ctx context.Context, by int, reply *int) error {
	tx, _ := semantics.TxOf[*fileTx](ctx)
	tx.Put("n", tx.Get("n")+by)
	return errors.New("refused")
}

// fileNode is a server on a file store that a test restarts.
type fileNode struct {
	t    *testing.T
	path string
	addr string
	srv  *Server
	st   *fileStore
	done chan error
}

func startFileNode(t *testing.T, path, addr string) *fileNode {
	t.Helper()
	st, err := openFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	n := &fileNode{t: t, path: path, st: st, done: make(chan error, 1)}
	n.srv = NewServer(WithLogger(discardLogger()), WithDurableStore(st))
	if err := n.srv.Register(Tally{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	go func() { n.done <- n.srv.Serve(l) }()
	t.Cleanup(n.stop)
	return n
}

func (n *fileNode) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Close()
	<-n.done
	n.srv = nil
}

// TestStoreOtherThanBoltGivesExactlyOnceAcrossRestart: the exactly-once
// guarantee rests on the Store interface alone. With a store that is not
// bbolt, a call runs, its reply is lost, the server restarts from the file,
// and the retry gets the original reply (or application error) without
// running the method again; a method that fails has its writes rolled back.
func TestStoreOtherThanBoltGivesExactlyOnceAcrossRestart(t *testing.T) {
	tests := []struct {
		method  string
		wantErr string // "" for success
		wantN   int    // the tally after the call
	}{
		{"Tally.Add", "", 5},
		{"Tally.AddThenRefuse", "refused", 0},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.gob")
			n := startFileNode(t, path, "127.0.0.1:0")
			addr := n.addr
			c := dialLossy(t, addr, tt.method, func() {
				n.stop()
				n = startFileNode(t, path, addr)
			})
			policy := semantics.ExactlyOnce(semantics.Backoff(time.Millisecond, 10*time.Millisecond))
			var got int
			err := c.Call(ctxT(t), tt.method, 5, &got, WithSemantics(policy))
			switch {
			case tt.wantErr == "" && (err != nil || got != 5):
				t.Fatalf("retried call: %d, %v; want 5", got, err)
			case tt.wantErr != "" && (!errors.Is(err, ErrApplication) || err.Error() != tt.wantErr):
				t.Fatalf("retried failing call: %v, want the recorded application error %q", err, tt.wantErr)
			}
			if st := n.srv.Stats(); st.Table.Restored != 1 || st.Table.Duplicates != 1 || st.Methods[tt.method].Calls != 0 {
				t.Fatalf("after restart: %+v, calls %d; want the restored record to answer", st.Table, st.Methods[tt.method].Calls)
			}
			if got := n.st.value("n"); got != tt.wantN {
				t.Fatalf("tally %d after the call, want %d", got, tt.wantN)
			}
			// The session survives the restart: a new call runs, once.
			if err := c.Call(ctxT(t), "Tally.Add", 1, &got, WithSemantics(policy)); err != nil || got != tt.wantN+1 {
				t.Fatalf("next call: %d, %v; want %d", got, err, tt.wantN+1)
			}
			if s := c.Stats(); s.SessionsOpened != 1 || s.SessionResets != 0 {
				t.Fatalf("client stats %+v: the session did not survive", s)
			}
		})
	}
}

// TestStoreOtherThanBoltRunsCallsWithoutHeader: a durable server runs
// no-retry calls in the store's transaction too, so the method finds it.
func TestStoreOtherThanBoltRunsCallsWithoutHeader(t *testing.T) {
	n := startFileNode(t, filepath.Join(t.TempDir(), "state.gob"), "127.0.0.1:0")
	c := dial(t, n.addr)
	var got int
	if err := c.Call(ctxT(t), "Tally.Add", 2, &got); err != nil || got != 2 {
		t.Fatalf("no-retry call: %d, %v", got, err)
	}
	err := c.Call(ctxT(t), "Tally.AddThenRefuse", 3, &got, WithSemantics(semantics.AtLeastOnce()))
	if !errors.Is(err, ErrApplication) {
		t.Fatalf("failing call: %v", err)
	}
	if got := n.st.value("n"); got != 2 {
		t.Fatalf("tally %d, want 2: the failing call's write was kept", got)
	}
}
