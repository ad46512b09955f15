package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCutAndQuoteText(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		max        int
		cut, quote string
	}{
		{"short", "Arith.Add", 16, "Arith.Add", `"Arith.Add"`},
		{"exactly the bound", "abcd", 4, "abcd", `"abcd"`},
		{"long", "abcdefgh", 4, "abcd…(4 bytes cut)", `"abcd"…(4 bytes cut)`},
		{"whole characters", "ééé", 3, "é…(4 bytes cut)", `"é"…(4 bytes cut)`},
		{"newline", "a\nFAKE", 16, "a\nFAKE", `"a\nFAKE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cutText(tt.in, tt.max); got != tt.cut {
				t.Errorf("cutText = %q, want %q", got, tt.cut)
			}
			if got := quoteText(tt.in, tt.max); got != tt.quote {
				t.Errorf("quoteText = %q, want %q", got, tt.quote)
			}
		})
	}
}

func TestEncodeErrorCutsLongTexts(t *testing.T) {
	for _, err := range []error{
		ServerError(strings.Repeat("x", 5000)),
		reject(CodeRejected, "%s", strings.Repeat("y", 5000)),
	} {
		code, msg := EncodeError(err)
		if len(msg) > MaxErrorBytes+32 || !strings.HasSuffix(msg, "…(3976 bytes cut)") {
			t.Errorf("EncodeError gave %d bytes ending %q", len(msg), msg[max(0, len(msg)-24):])
		}
		if back := DecodeError(code, msg); back.Error() != msg {
			t.Errorf("DecodeError(EncodeError) = %v", back)
		}
	}
	if _, msg := EncodeError(ServerError("short")); msg != "short" {
		t.Errorf("a short text became %q", msg)
	}
}

// countingConn counts the bytes read from it.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A 4 MB service/method name is answered, on the gob wire and over
// JSON-RPC, with a small refusal that says what was refused and quotes a
// cut name.
func TestHugeUnknownMethodNameGetsASmallAnswer(t *testing.T) {
	const huge = 4_000_000
	_, _, addr, _ := startServer(t)
	tests := []struct {
		name   string
		method string
		says   string
	}{
		{"unknown service", strings.Repeat("s", huge) + ".Add", `can't find service "sss`},
		{"unknown method", "Arith." + strings.Repeat("m", huge), `can't find method "Arith.mmm`},
		{"no dot", strings.Repeat("x", huge), `ill-formed: "xxx`},
		{"newline", "Evil\nFAKE.Method", `can't find service "Evil\nFAKE.Method"`},
	}
	for _, tt := range tests {
		t.Run("gob/"+tt.name, func(t *testing.T) {
			var read atomic.Int64
			tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				nc, err := d.DialContext(ctx, "tcp", addr)
				return countingConn{nc, &read}, err
			})
			defer tr.Close()
			err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: tt.method, Args: Args{1, 2}}, new(int))
			if !errors.Is(err, ErrUnknownMethod) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err = %.300q, want unknown method saying %q", err, tt.says)
			}
			if len(tt.method) > maxNameBytes && !strings.Contains(err.Error(), "bytes cut)") {
				t.Fatalf("err = %.300q, want the name marked as cut", err)
			}
			if n := read.Load(); n >= 2<<10 {
				t.Fatalf("the client read %d bytes of answer", n)
			}
		})
		t.Run("json/"+tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			method, _ := json.Marshal(tt.method)
			go nc.Write([]byte(`{"method":` + string(method) + `,"params":[{"A":1,"B":2}],"id":1}`))
			line, err := bufio.NewReaderSize(nc, 4<<10).ReadSlice('\n')
			if err != nil {
				t.Fatalf("reading the answer: %v (%d bytes)", err, len(line))
			}
			if len(line) >= 2<<10 || !strings.Contains(string(line), "can't find") && !strings.Contains(string(line), "ill-formed") {
				t.Fatalf("answer of %d bytes: %.300s", len(line), line)
			}
		})
	}
}
