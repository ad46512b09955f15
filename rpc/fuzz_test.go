package rpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/internal/gobcheck"

	"github.com/semrpc/semrpc/semantics"
)

// fuzzConn is a connection whose peer sent data and then hung up.
type fuzzConn struct {
	r io.Reader
	w bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *fuzzConn) Close() error                { return nil }

// validRequests encodes a few well-formed requests, as seeds.
func validRequests(tb testing.TB) [][]byte {
	var seeds [][]byte
	reqs := []struct {
		req  wireRequest
		body any
	}{
		{wireRequest{ServiceMethod: "Arith.Add", Seq: 1}, Args{1, 2}},
		{wireRequest{ServiceMethod: "Arith.Mul", Seq: 2}, &Args{3, 4}},
		{wireRequest{ServiceMethod: "Arith.Echo", Seq: 3}, "hello"},
		{wireRequest{ServiceMethod: "Arith.Add", Seq: 4, Sem: &semantics.Header{
			Client: semantics.ClientID{Hi: 1, Lo: 2}, Seq: 1, Ack: 1, Epoch: 7}}, Args{5, 6}},
		{wireRequest{ServiceMethod: openMethod, Seq: 5}, OpenArgs{Version: 1}},
		{wireRequest{ServiceMethod: "Nope.Nope", Seq: 6}, Args{}},
		{wireRequest{ServiceMethod: "Arith.Add", Seq: 7, Metadata: Metadata{"k": {"v", "w"}, "x-y": {""}}}, Args{7, 8}},
	}
	var all bytes.Buffer
	enc := gob.NewEncoder(&all)
	for _, r := range reqs {
		var one bytes.Buffer
		e := gob.NewEncoder(&one)
		if err := e.Encode(&r.req); err != nil {
			tb.Fatal(err)
		}
		if err := e.Encode(r.body); err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, one.Bytes())
		enc.Encode(&r.req)
		enc.Encode(r.body)
	}
	return append(seeds, all.Bytes())
}

// FuzzServeConn feeds arbitrary bytes to the server as one connection's
// stream: it must neither panic nor hang, and must allocate within the
// message-size bound.
func FuzzServeConn(f *testing.F) {
	for _, s := range validRequests(f) {
		f.Add(s)
	}
	srv := NewServer(WithLogger(discardLogger()), WithMaxMessageSize(1<<16))
	a := &Arith{block: make(chan struct{})}
	close(a.block)
	if err := srv.Register(a); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &fuzzConn{r: bytes.NewReader(data)}
		srv.ServeConn(conn)
		// Whatever came back must itself be a readable response stream.
		dec := gob.NewDecoder(bytes.NewReader(conn.w.Bytes()))
		for {
			var resp wireResponse
			if err := dec.Decode(&resp); err != nil {
				break
			}
			if err := dec.Decode(new(any)); err != nil {
				break
			}
		}
	})
}

// FuzzMsgReader feeds arbitrary bytes to a server connection's reader
// (framing and the gob check) and decodes request headers and bodies from
// it, as a connection does: it never panics, hands on only bytes it was
// given, in order, and never more than the message limit at a time.
func FuzzMsgReader(f *testing.F) {
	for _, s := range validRequests(f) {
		f.Add(s, uint16(64))
		f.Add(s, uint16(4096))
	}
	f.Add([]byte{0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		m := newMsgReader(bytes.NewReader(data), int(max), gobcheck.NewStream(gobcheck.Limits{}))
		got, _ := io.ReadAll(io.LimitReader(m, int64(len(data))+1))
		if len(got) > len(data) || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("the reader changed the bytes it passed")
		}
		dec := gob.NewDecoder(newMsgReader(bytes.NewReader(data), int(max), gobcheck.NewStream(gobcheck.Limits{})))
		for range 16 {
			var req wireRequest
			if dec.Decode(&req) != nil {
				return
			}
			var body any
			if dec.Decode(&body) != nil {
				return
			}
		}
	})
}

// FuzzTableHeaders drives the at-most-once table with arbitrary headers
// and checks the one property that matters: no (client, seq) runs twice.
func FuzzTableHeaders(f *testing.F) {
	f.Add([]byte{1, 1, 1, 1, 1, 1, 2, 1, 1, 2, 2, 1})
	f.Add([]byte{1, 3, 1, 1, 3, 1, 1, 2, 2, 1, 1, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tab := semantics.NewTable(&semantics.TableConfig{Epoch: 9})
		ran := map[[2]uint64]bool{}
		var mu sync.Mutex
		for i := 0; i+3 <= len(ops); i += 3 {
			h := semantics.Header{
				Client: semantics.ClientID{Lo: uint64(ops[i] % 4)},
				Seq:    uint64(ops[i+1] % 16),
				Ack:    uint64(ops[i+2] % 16),
				Epoch:  9,
			}
			if ops[i+2] == 255 {
				h.Epoch = 8
			}
			tk, err := tab.Begin(context.Background(), h)
			if err != nil {
				continue
			}
			if tk.Run() {
				key := [2]uint64{h.Client.Lo, h.Seq}
				mu.Lock()
				if ran[key] {
					t.Fatalf("client %d seq %d ran twice", h.Client.Lo, h.Seq)
				}
				ran[key] = true
				mu.Unlock()
				tab.Finish(tk, semantics.Outcome{Reply: h.Seq})
			} else if got := tk.Cached().Reply; got != h.Seq {
				t.Fatalf("duplicate of seq %d answered with %v", h.Seq, got)
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates the checked-in seed corpus of
// FuzzServeConn from validRequests: SEMRPC_WRITE_SEEDS=1 go test -run WriteFuzzSeeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SEMRPC_WRITE_SEEDS") == "" {
		t.Skip("set SEMRPC_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzServeConn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range validRequests(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
