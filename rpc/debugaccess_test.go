package rpc

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// debugStatus asks s's debug page for a request from remoteAddr.
func debugStatus(s *Server, remoteAddr string, header http.Header) (int, string) {
	req := httptest.NewRequest(http.MethodGet, DefaultDebugPath, nil)
	req.RemoteAddr = remoteAddr
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.DebugHandler().ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func TestDebugPageAnswersLoopbackPeersOnlyByDefault(t *testing.T) {
	tests := []struct {
		remote string
		want   int
	}{
		{"127.0.0.1:5555", http.StatusOK},
		{"127.1.2.3:5555", http.StatusOK},
		{"[::1]:5555", http.StatusOK},
		{"[::ffff:127.0.0.1]:5555", http.StatusOK},
		{"10.0.0.7:5555", http.StatusForbidden},
		{"[2001:db8::1]:5555", http.StatusForbidden},
		{"192.0.2.1:5555", http.StatusForbidden},
		{"", http.StatusForbidden},  // a Unix socket
		{"@", http.StatusForbidden}, // an abstract Unix socket
		{"localhost:5555", http.StatusForbidden},
	}
	for _, opts := range [][]Option{nil, {WithDebugAccess(nil)}} {
		s, _ := newArithServer(t, opts...)
		for _, tt := range tests {
			code, body := debugStatus(s, tt.remote, nil)
			if code != tt.want {
				t.Errorf("RemoteAddr %q (%d options): status %d, want %d", tt.remote, len(opts), code, tt.want)
			}
			if code == http.StatusOK && !strings.Contains(body, "Arith.Add") {
				t.Errorf("RemoteAddr %q: the page lacks the methods:\n%s", tt.remote, body)
			}
			if code == http.StatusForbidden && strings.Contains(body, "Arith") {
				t.Errorf("RemoteAddr %q: a refusal shows the methods:\n%s", tt.remote, body)
			}
		}
	}
}

func TestWithDebugAccessDecidesWhoSeesTheDebugPage(t *testing.T) {
	s, _ := newArithServer(t, WithDebugAccess(func(r *http.Request) bool {
		return r.Header.Get("X-Debug-Token") == "secret"
	}))
	tests := []struct {
		name   string
		remote string
		token  string
		want   int
	}{
		{"allowed from afar", "192.0.2.1:5555", "secret", http.StatusOK},
		{"denied from afar", "192.0.2.1:5555", "guess", http.StatusForbidden},
		{"denied from loopback", "127.0.0.1:5555", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _ := debugStatus(s, tt.remote, http.Header{"X-Debug-Token": {tt.token}})
			if code != tt.want {
				t.Fatalf("status %d, want %d", code, tt.want)
			}
		})
	}
	// Everyone, if the server says so.
	open, _ := newArithServer(t, WithDebugAccess(func(*http.Request) bool { return true }))
	if code, _ := debugStatus(open, "192.0.2.1:5555", nil); code != http.StatusOK {
		t.Fatalf("an allow-all server answered %d", code)
	}
}

// HandleHTTP with an empty debug path registers the RPC path alone (an
// empty pattern would make http.Handle panic).
func TestHandleHTTPWithoutDebugPath(t *testing.T) {
	s, _ := newArithServer(t)
	// A path of its own for each run: http.DefaultServeMux keeps what is
	// registered on it for the life of the process (go test -count=N).
	rpcPath := fmt.Sprintf("/TestHandleHTTPWithoutDebugPath/%d/rpc", time.Now().UnixNano())
	s.HandleHTTP(rpcPath, "")
	h, pattern := http.DefaultServeMux.Handler(httptest.NewRequest(http.MethodConnect, rpcPath, nil))
	if pattern != rpcPath || h != http.Handler(s) {
		t.Fatalf("%s is served by %v (pattern %q)", rpcPath, h, pattern)
	}
}
