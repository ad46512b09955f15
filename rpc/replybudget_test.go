package rpc

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

const mib = 1 << 20

// Blob answers with replies of the size asked for.
type Blob struct{ calls atomic.Int64 }

func (b *Blob) Get(n int, reply *[]byte) error {
	b.calls.Add(1)
	*reply = make([]byte, n)
	return nil
}

// blobSize is an ArgsDecoder for Blob.Get.
type blobSize int

func (n blobSize) DecodeArgs(v any) error {
	*v.(*int) = int(n)
	return nil
}

// budgetServer is a server of a Blob whose table has the reply budgets
// given (bytes).
func budgetServer(t *testing.T, total, perSession int64) (*Server, *Blob) {
	t.Helper()
	tb := semantics.NewTable(&semantics.TableConfig{MaxReplyBytes: total, MaxSessionReplyBytes: perSession})
	s := NewServer(WithTable(tb), WithLogger(discardLogger()))
	b := new(Blob)
	if err := s.Register(b); err != nil {
		t.Fatal(err)
	}
	return s, b
}

// wantBudgetRefusal checks that err, as a caller reads it off the wire, is
// a refusal (not executed) that names the reply budget.
func wantBudgetRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, semantics.ErrReplyBudget) {
		t.Fatalf("%s: %v, want ErrReplyBudget", what, err)
	}
	wire := DecodeError(EncodeError(err))
	var re *RejectedError
	if !errors.As(wire, &re) || re.Code != CodeRejected || semantics.ClassOf(wire) != semantics.ClassRejected ||
		!strings.Contains(wire.Error(), "reply budget") {
		t.Fatalf("%s: on the wire %v (class %v), want CodeRejected saying reply budget", what, wire, semantics.ClassOf(wire))
	}
}

// TestReplyBudgetRefusesCallsBeyondItNotExecuted: one session makes 300
// calls with 1 MiB replies and never acknowledges one (its client left),
// under a 64 MiB budget. Calls beyond the budget are refused, not run (the
// method's counter), the kept bytes stay within the budget plus one reply,
// a retry of a recorded call is still answered from its record, and once
// the client acknowledges the bytes go back to one reply, and to zero when
// the session closes.
func TestReplyBudgetRefusesCallsBeyondItNotExecuted(t *testing.T) {
	s, b := budgetServer(t, 64*mib, 64*mib)
	tb := s.Table()
	id, err := tb.Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hdr := func(seq, ack uint64) *semantics.Header {
		return &semantics.Header{Client: id, Seq: seq, Ack: ack, Epoch: tb.Epoch()}
	}
	answered := 0
	for seq := uint64(1); seq <= 300; seq++ {
		reply, err := s.Handle(ctx, "Blob.Get", hdr(seq, 1), blobSize(mib))
		if err == nil {
			answered++
			if len(*reply.(*[]byte)) != mib {
				t.Fatalf("call %d: reply of %d bytes", seq, len(*reply.(*[]byte)))
			}
		} else {
			wantBudgetRefusal(t, "a call beyond the budget", err)
		}
		if kept := tb.Stats().ReplyBytes; kept > 64*mib+mib+64 {
			t.Fatalf("after call %d: %d bytes kept, want at most the budget and one reply", seq, kept)
		}
	}
	if n := b.calls.Load(); n != int64(answered) || n < 63 || n > 64 {
		t.Fatalf("the method ran %d times for %d answers, want about 64 (64 MiB of 1 MiB replies)", n, answered)
	}
	ran := b.calls.Load()
	t.Logf("%d calls ran, %d refused; %d bytes kept", ran, 300-ran, tb.Stats().ReplyBytes)

	// A retry of a recorded call is answered from its record.
	if reply, err := s.Handle(ctx, "Blob.Get", hdr(1, 1), blobSize(mib)); err != nil || len(*reply.(*[]byte)) != mib {
		t.Fatalf("retry of call 1 at the budget: %v", err)
	}
	if b.calls.Load() != ran {
		t.Fatal("a retry of a recorded call ran again")
	}

	// The client acknowledges every call it sent: the bytes are freed and
	// its next call runs.
	if _, err := s.Handle(ctx, "Blob.Get", hdr(301, 301), blobSize(mib)); err != nil {
		t.Fatalf("call after the acknowledgement: %v", err)
	}
	if kept := tb.Stats().ReplyBytes; kept > mib+64 {
		t.Fatalf("%d bytes kept after the ack, want only the last reply", kept)
	}
	tb.Close(id)
	if kept := tb.Stats().ReplyBytes; kept != 0 {
		t.Fatalf("%d bytes kept after the session closed", kept)
	}
}

// TestReplyBudgetRefusalReachesTheCallerNotExecuted: a client whose call
// finds the server's reply budget exhausted (by another session that never
// acknowledges) gets a refusal, not executed, that says why; once that
// session closes the call works.
func TestReplyBudgetRefusalReachesTheCallerNotExecuted(t *testing.T) {
	s, b, addr := serveBudget(t, 2*mib, 2*mib)
	filler, err := s.Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		h := &semantics.Header{Client: filler, Seq: seq, Ack: 1, Epoch: s.Table().Epoch()}
		if _, err := s.Handle(context.Background(), "Blob.Get", h, blobSize(mib)); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, addr, WithSemantics(atMostOnce()))
	var reply []byte
	err = c.Call(ctxT(t), "Blob.Get", 10, &reply)
	var re *RejectedError
	if !errors.Is(err, ErrNotExecuted) || !errors.As(err, &re) || re.Code != CodeRejected || !strings.Contains(err.Error(), "reply budget") {
		t.Fatalf("call at the server's budget: %v, want a refusal (not executed) naming the reply budget", err)
	}
	if n := b.calls.Load(); n != 2 {
		t.Fatalf("the method ran %d times, want only the filler's 2", n)
	}
	s.Table().Close(filler)
	if err := c.Call(ctxT(t), "Blob.Get", 10, &reply); err != nil || len(reply) != 10 {
		t.Fatalf("call once the budget is free: %v", err)
	}
}

// TestSessionReplyBudgetRefusesOneSessionOnly: a session at its own budget
// is refused while another client's calls go on.
func TestSessionReplyBudgetRefusesOneSessionOnly(t *testing.T) {
	s, _, addr := serveBudget(t, 64*mib, 4*mib)
	hog, err := s.Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	var refused error
	for seq := uint64(1); seq <= 6 && refused == nil; seq++ {
		h := &semantics.Header{Client: hog, Seq: seq, Ack: 1, Epoch: s.Table().Epoch()}
		_, refused = s.Handle(context.Background(), "Blob.Get", h, blobSize(mib))
	}
	wantBudgetRefusal(t, "the session at its budget", refused)
	c := dial(t, addr, WithSemantics(atMostOnce()))
	for i := 0; i < 10; i++ {
		var reply []byte
		if err := c.Call(ctxT(t), "Blob.Get", mib, &reply); err != nil {
			t.Fatalf("another client's call %d: %v", i, err)
		}
	}
}

// serveBudget serves a Blob over TCP loopback from a server whose table has
// the reply budgets given.
func serveBudget(t *testing.T, total, perSession int64) (*Server, *Blob, string) {
	t.Helper()
	tb := semantics.NewTable(&semantics.TableConfig{MaxReplyBytes: total, MaxSessionReplyBytes: perSession})
	s, _, addr, _ := startServer(t, WithTable(tb))
	b := new(Blob)
	if err := s.Register(b); err != nil {
		t.Fatal(err)
	}
	return s, b, addr
}

// TestReplyBudgetOnADurableServer: a durable table charges its records as
// the in-memory one does, before and after a restart (the restored
// records count at the length of their stored replies).
func TestReplyBudgetOnADurableServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "budget.db")
	cfg := &boltstore.Config{Table: semantics.TableConfig{MaxReplyBytes: 3 * mib, MaxSessionReplyBytes: 3 * mib}}
	st, err := boltstore.Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(WithDurableStore(st), WithLogger(discardLogger()))
	b := new(Blob)
	// Blob.Get only computes its reply: nothing to keep in the transaction.
	if err := s.Register(b, OutsideTransaction("Get")); err != nil {
		t.Fatal(err)
	}
	id, err := s.Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hdr := func(seq, ack uint64) *semantics.Header {
		return &semantics.Header{Client: id, Seq: seq, Ack: ack, Epoch: s.Table().Epoch()}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := s.Handle(ctx, "Blob.Get", hdr(seq, 1), blobSize(mib)); err != nil {
			t.Fatalf("call %d: %v", seq, err)
		}
	}
	_, err = s.Handle(ctx, "Blob.Get", hdr(4, 1), blobSize(mib))
	wantBudgetRefusal(t, "a durable server at its budget", err)
	st.Close()

	st, err = boltstore.Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if kept := st.Table().Stats().ReplyBytes; kept < 3*mib {
		t.Fatalf("%d bytes kept after the restart, want the 3 restored replies", kept)
	}
	s = NewServer(WithDurableStore(st), WithLogger(discardLogger()))
	if err := s.Register(b, OutsideTransaction("Get")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Handle(ctx, "Blob.Get", hdr(4, 1), blobSize(mib))
	wantBudgetRefusal(t, "the restarted server at its budget", err)
	if reply, err := s.Handle(ctx, "Blob.Get", hdr(2, 1), blobSize(mib)); err != nil || len(*reply.(*[]byte)) != mib {
		t.Fatalf("retry of a restored call: %v", err)
	}
	if _, err := s.Handle(ctx, "Blob.Get", hdr(4, 4), blobSize(10)); err != nil {
		t.Fatalf("call after the ack: %v", err)
	}
	if n := b.calls.Load(); n != 4 {
		t.Fatalf("the method ran %d times, want 4", n)
	}
}
