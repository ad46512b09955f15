package rpc

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// keysWithoutValues returns metadata of n keys, none with a value.
func keysWithoutValues(n int) Metadata {
	md := make(Metadata, n)
	for i := range n {
		md[fmt.Sprintf("k%d", i)] = nil
	}
	return md
}

func TestMetadataValidateCountsKeysWithoutValues(t *testing.T) {
	tests := []struct {
		name string
		md   Metadata
		want error
	}{
		{"64 keys without values", keysWithoutValues(MaxMetadataEntries), nil},
		{"65 keys without values", keysWithoutValues(MaxMetadataEntries + 1), ErrMetadataTooLarge},
		{"350,000 keys without values", keysWithoutValues(350_000), ErrMetadataTooLarge},
		{"63 values and a key without", Metadata{"a": make([]string, MaxMetadataEntries-1), "b": nil}, nil},
		{"64 values and a key without", Metadata{"a": make([]string, MaxMetadataEntries), "b": nil}, ErrMetadataTooLarge},
		{"a key of 8 KiB without values", Metadata{strings.Repeat("k", MaxMetadataBytes): nil}, nil},
		{"keys without values over 8 KiB", Metadata{strings.Repeat("k", MaxMetadataBytes): nil, "b": nil}, ErrMetadataTooLarge},
		{"odd-pairs key without values", Metadata{oddKey: nil}, ErrBadMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.md.Validate(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
		})
	}
}

// metaConnsWithHTTP is metaConns and the HTTP tunnel (CONNECT, then the
// gob wire).
func metaConnsWithHTTP() []metaConn {
	return append(metaConns(), metaConn{name: "http", setup: func(t *testing.T, srv *Server) Transport {
		mux := http.NewServeMux()
		mux.Handle(DefaultRPCPath, srv)
		hs := httptest.NewServer(mux)
		t.Cleanup(hs.Close)
		return NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", hs.Listener.Addr().String())
			if err != nil {
				return nil, err
			}
			if err := httpConnect(ctx, nc, DefaultRPCPath, DefaultRetryTimeout); err != nil {
				nc.Close()
				return nil, err
			}
			return nc, nil
		})
	}})
}

// A peer that skips the client's checks and sends 350,000 keys without
// values (about 3 MB, within the message limit), or the odd-pairs key
// without values, is refused, the method not run, on every connection;
// the connection still serves.
func TestServerRefusesMetadataOfKeysWithoutValues(t *testing.T) {
	many := keysWithoutValues(350_000)
	for _, conn := range metaConnsWithHTTP() {
		t.Run(conn.name, func(t *testing.T) {
			srv := NewServer(WithLogger(discardLogger()))
			svc := &MetaSvc{}
			srv.Register(svc)
			tr := conn.setup(t, srv)
			defer func() {
				tr.Close()
				srv.Shutdown(context.Background())
			}()
			var seen MetaSeen
			err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "MetaSvc.Echo", Args: "k", Metadata: many}, &seen)
			if semantics.ClassOf(err) != semantics.ClassRejected ||
				!strings.Contains(err.Error(), "metadata too large: 350000 entries") {
				t.Fatalf("err = %v (class %v), want a refusal saying metadata too large: 350000 entries", err, semantics.ClassOf(err))
			}
			if len(err.Error()) > MaxErrorBytes+64 {
				t.Fatalf("the refusal is %d bytes long", len(err.Error()))
			}
			// The odd-pairs key without a value once made Validate index
			// its last value: a panic on the server's worker goroutine.
			err = tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "MetaSvc.Echo", Args: "k", Metadata: Metadata{oddKey: nil}}, &seen)
			if semantics.ClassOf(err) != semantics.ClassRejected || !strings.Contains(err.Error(), "invalid metadata") {
				t.Fatalf("odd-pairs key without values: err = %v, want a refusal saying invalid metadata", err)
			}
			if n := svc.calls.Load(); n != 0 {
				t.Fatalf("the method ran %d times", n)
			}
			if err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "MetaSvc.Echo", Args: "k"}, &seen); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A method cannot get keys without values past the limits either.
func TestSetHeaderCountsKeysWithoutValues(t *testing.T) {
	ctx := &serverCall{Context: context.Background()}
	if err := SetHeader(ctx, keysWithoutValues(MaxMetadataEntries+1)); !errors.Is(err, ErrMetadataTooLarge) {
		t.Fatalf("SetHeader(65 keys without values) = %v, want ErrMetadataTooLarge", err)
	}
	if err := SetTrailer(ctx, keysWithoutValues(MaxMetadataEntries)); err != nil {
		t.Fatalf("SetTrailer(64 keys without values) = %v", err)
	}
	if err := SetTrailer(ctx, Pairs("one", "more")); !errors.Is(err, ErrMetadataTooLarge) {
		t.Fatalf("SetTrailer over the limit = %v, want ErrMetadataTooLarge", err)
	}
}

// fakeReplyServer answers every request on its end of a pipe with the
// given reply metadata and the int 7.
func fakeReplyServer(t *testing.T, header Metadata, errText string) Transport {
	return NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		c1, c2 := net.Pipe()
		done := make(chan struct{})
		t.Cleanup(func() {
			c2.Close()
			<-done
		})
		go func() {
			defer close(done)
			dec, enc := gob.NewDecoder(c2), gob.NewEncoder(c2)
			for {
				var req wireRequest
				if dec.Decode(&req) != nil || dec.DecodeValue(reflect.Value{}) != nil {
					return
				}
				resp := wireResponse{ServiceMethod: req.ServiceMethod, Seq: req.Seq, Header: header, Error: errText}
				var body any = 7
				if errText != "" {
					body = emptyBody{}
				}
				if enc.Encode(&resp) != nil || enc.Encode(body) != nil {
					return
				}
			}
		}()
		return c1, nil
	})
}

// Reply metadata over the limits, from a server that is not ours: the
// client drops it; a reply becomes unusable (the method ran), an error
// answer stays what it was.
func TestClientDropsReplyMetadataOverTheLimits(t *testing.T) {
	t.Run("reply", func(t *testing.T) {
		c := NewClient(fakeReplyServer(t, keysWithoutValues(350_000), ""))
		defer c.Close()
		var n int
		header := Metadata{"stale": {"x"}}
		err := c.Call(ctxT(t), "Any.Method", 1, &n, WithHeader(&header))
		if !errors.Is(err, ErrReplyUnusable) || !errors.Is(err, ErrMetadataTooLarge) || errors.Is(err, ErrNotExecuted) {
			t.Fatalf("err = %v, want reply unusable wrapping ErrMetadataTooLarge", err)
		}
		if header != nil {
			t.Fatalf("the caller got %d keys of header", len(header))
		}
	})
	t.Run("error answer", func(t *testing.T) {
		c := NewClient(fakeReplyServer(t, keysWithoutValues(350_000), "it failed"))
		defer c.Close()
		var header Metadata
		err := c.Call(ctxT(t), "Any.Method", 1, new(int), WithHeader(&header))
		if !errors.Is(err, ErrApplication) || err.Error() != "it failed" || header != nil {
			t.Fatalf("err = %v, header %d keys; want the application error alone", err, len(header))
		}
	})
	t.Run("within the limits", func(t *testing.T) {
		c := NewClient(fakeReplyServer(t, Pairs("h", "v"), ""))
		defer c.Close()
		var n int
		var header Metadata
		if err := c.Call(ctxT(t), "Any.Method", 1, &n, WithHeader(&header)); err != nil || n != 7 || header.First("h") != "v" {
			t.Fatalf("err = %v, n = %d, header %v", err, n, header)
		}
	})
}
