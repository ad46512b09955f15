package crawler

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newHTTPFetcher(t *testing.T, cfg *HTTPConfig) *HTTPFetcher {
	t.Helper()
	h, err := NewHTTPFetcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestHTTPFetcher(t *testing.T) {
	big := `<a href="/first">` + strings.Repeat("x", 64<<10) + `<a href="/last">`
	mux := http.NewServeMux()
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		if ua := r.Header.Get("User-Agent"); ua != DefaultUserAgent {
			http.Error(w, "bad agent "+ua, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<a href="a/b.html#x">1</a><a href="../up">2</a><a href="mailto:x@y">3</a>`)
	})
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, `<a href="/nope">not html</a>`)
	})
	mux.HandleFunc("/sniffed", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // no header: the fetcher sniffs
		fmt.Fprint(w, `<!DOCTYPE html><html><a href="/found">x</a></html>`)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, big)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/html", http.StatusFound)
	})
	for _, code := range []int{400, 403, 404, 410, 429, 500, 502, 503} {
		mux.HandleFunc(fmt.Sprintf("/status/%d", code), func(w http.ResponseWriter, r *http.Request) {
			if code == 429 {
				w.Header().Set("Retry-After", "7")
			}
			http.Error(w, "no", code)
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h := newHTTPFetcher(t, &HTTPConfig{MaxBodyBytes: 32 << 10})

	tests := []struct {
		path      string
		want      []string
		status    int // for an *HTTPError
		retryable bool
		truncated bool
	}{
		{path: "/html", want: []string{srv.URL + "/a/b.html", srv.URL + "/up"}},
		{path: "/text", want: nil},
		{path: "/sniffed", want: []string{srv.URL + "/found"}},
		{path: "/big", want: []string{srv.URL + "/first"}, truncated: true},
		{path: "/redirect", want: []string{srv.URL + "/html"}},
		{path: "/status/400", status: 400},
		{path: "/status/403", status: 403},
		{path: "/status/404", status: 404},
		{path: "/status/410", status: 410},
		{path: "/status/429", status: 429, retryable: true},
		{path: "/status/500", status: 500, retryable: true},
		{path: "/status/502", status: 502, retryable: true},
		{path: "/status/503", status: 503, retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			page, err := h.FetchPage(context.Background(), srv.URL+tt.path)
			if tt.status != 0 {
				var he *HTTPError
				if !errors.As(err, &he) || he.StatusCode != tt.status {
					t.Fatalf("err = %v, want HTTPError %d", err, tt.status)
				}
				if he.Retryable() != tt.retryable || Retryable(err) != tt.retryable {
					t.Errorf("Retryable = %v/%v, want %v", he.Retryable(), Retryable(err), tt.retryable)
				}
				if tt.status == 429 && he.RetryAfter != 7*time.Second {
					t.Errorf("RetryAfter = %v, want 7s", he.RetryAfter)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(page.Links, tt.want) {
				t.Errorf("links = %q, want %q", page.Links, tt.want)
			}
			if page.Truncated != tt.truncated {
				t.Errorf("Truncated = %v, want %v", page.Truncated, tt.truncated)
			}
		})
	}
}

func TestHTTPFetcherNetworkErrorRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	h := newHTTPFetcher(t, nil)
	_, err = h.Fetch(context.Background(), "http://"+addr+"/")
	if err == nil || !Retryable(err) {
		t.Errorf("err = %v, Retryable = %v; want a retryable error", err, Retryable(err))
	}
}

func TestHTTPFetcherTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h := newHTTPFetcher(t, &HTTPConfig{Timeout: 50 * time.Millisecond})
	start := time.Now()
	_, err := h.Fetch(context.Background(), srv.URL)
	if err == nil || !Retryable(err) {
		t.Errorf("err = %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Fetch(ctx, srv.URL); !errors.Is(err, context.Canceled) || Retryable(err) {
		t.Errorf("cancelled fetch: err = %v, Retryable %v", err, Retryable(err))
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	for _, cfg := range []*HTTPConfig{
		{Timeout: -1}, {MaxBodyBytes: -5},
	} {
		if _, err := NewHTTPFetcher(cfg); err == nil {
			t.Errorf("NewHTTPFetcher(%+v) succeeded", *cfg)
		}
	}
	if _, err := NewHTTPFetcher(nil); err != nil {
		t.Errorf("NewHTTPFetcher(nil): %v", err)
	}
	h := newHTTPFetcher(t, nil)
	if _, err := h.Fetch(context.Background(), "ftp://example.com/"); !errors.Is(err, ErrUnsupportedURL) {
		t.Errorf("ftp fetch: err = %v", err)
	}
}

// A body whose Content-Type is not HTML is not downloaded: the handler
// sends a first chunk of a large PDF and then stalls until the client goes
// away. Reading the body would stall FetchPage until its timeout.
func TestHTTPFetcherDoesNotDownloadNonHTML(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Length", fmt.Sprint(2<<20))
		w.Write(make([]byte, 1024))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h := newHTTPFetcher(t, &HTTPConfig{Timeout: 10 * time.Second})
	page, err := h.FetchPage(context.Background(), srv.URL+"/paper.pdf")
	if err != nil {
		t.Fatalf("FetchPage read the body of a PDF: %v", err)
	}
	if page.ContentType != "application/pdf" || len(page.Links) != 0 {
		t.Errorf("page = %+v, want a PDF without links", page)
	}
}

func TestHTTPFetcherRobotsDirectives(t *testing.T) {
	const links = `<a href="/x">x</a><a href="/y">y</a>`
	tests := []struct {
		name      string
		header    []string // X-Robots-Tag values
		body      string
		wantLinks []string // paths
		noFollow  bool
		noIndex   bool
	}{
		{"none", nil, links, []string{"/x", "/y"}, false, false},
		{"header nofollow", []string{"nofollow"}, links, nil, true, false},
		{"header noindex", []string{"noindex"}, links, []string{"/x", "/y"}, false, true},
		{"header none", []string{"none"}, links, nil, true, true},
		{"header list", []string{"noarchive, NoFollow"}, links, nil, true, false},
		{"header for our agent", []string{"semrpc-crawler: noindex, nofollow"}, links, nil, true, true},
		{"header for another agent", []string{"otherbot: nofollow"}, links, []string{"/x", "/y"}, false, false},
		{"two headers", []string{"otherbot: noindex", "nofollow"}, links, nil, true, false},
		{"directive with a value", []string{"unavailable_after: 25 Jun 2010 15:00:00 PST"}, links, []string{"/x", "/y"}, false, false},
		{"meta nofollow", nil, `<head><meta name="robots" content="nofollow"></head>` + links, nil, true, false},
		{"meta after the links", nil, links + `<meta name="ROBOTS" content="none">`, nil, true, true},
		{"meta for our agent", nil, `<meta name="Semrpc-Crawler" content="noindex">` + links, []string{"/x", "/y"}, false, true},
		{"meta for another agent", nil, `<meta name="otherbot" content="nofollow">` + links, []string{"/x", "/y"}, false, false},
		{"rel nofollow", nil, `<a rel="nofollow" href="/n">n</a><a rel="noopener NOFOLLOW" href="/m">m</a>` + links, []string{"/x", "/y"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for _, v := range tt.header {
					w.Header().Add("X-Robots-Tag", v)
				}
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			page, err := newHTTPFetcher(t, nil).FetchPage(context.Background(), srv.URL+"/")
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, p := range tt.wantLinks {
				want = append(want, srv.URL+p)
			}
			if !slices.Equal(page.Links, want) || page.NoFollow != tt.noFollow || page.NoIndex != tt.noIndex {
				t.Errorf("links %q NoFollow %v NoIndex %v; want %q %v %v",
					page.Links, page.NoFollow, page.NoIndex, want, tt.noFollow, tt.noIndex)
			}
		})
	}
}

// TLS failures that a retry would meet again are final: one request, not
// MaxRetries+1.
func TestPoliteDoesNotRetryTLSFailures(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	_, tlsPort, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())
	trusting := tlsSrv.Client() // trusts the test certificate (127.0.0.1, example.com)

	tests := []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"unknown authority", nil, tlsSrv.URL + "/"},
		{"wrong host name", trusting, "https://localhost:" + tlsPort + "/"},
		{"server does not speak TLS", nil, strings.Replace(plain.URL, "http:", "https:", 1) + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hf := newHTTPFetcher(t, &HTTPConfig{Client: tt.client})
			var calls atomic.Int32
			f := FetcherFunc(func(ctx context.Context, url string) ([]string, error) {
				calls.Add(1)
				return hf.Fetch(ctx, url)
			})
			cfg := fastRetries()
			cfg.IgnoreRobots = true
			p, err := Polite(f, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Fetch(context.Background(), tt.url)
			if err == nil || Retryable(err) {
				t.Errorf("err = %v, Retryable %v; want a final error", err, Retryable(err))
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d requests, want 1 (err %v)", n, err)
			}
		})
	}
}

func TestRetryableErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"DNS timeout", &url.Error{Op: "Get", Err: &net.DNSError{Name: "h", IsTimeout: true}}, true},
		{"no such host", &url.Error{Op: "Get", Err: &net.DNSError{Name: "h", IsNotFound: true}}, false},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"503", &HTTPError{StatusCode: 503}, true},
		{"404", &HTTPError{StatusCode: 404}, false},
		{"cancelled", context.Canceled, false},
		{"disallowed", fmt.Errorf("x: %w", ErrDisallowed), false},
		{"host backing off", fmt.Errorf("x: %w", ErrHostBackingOff), false},
		{"scheme mismatch", &url.Error{Op: "Get", Err: http.ErrSchemeMismatch}, false},
		{"unknown authority", &url.Error{Op: "Get", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// Retry-After in its HTTP-date form is read against the server's Date.
func TestHTTPFetcherRetryAfterDate(t *testing.T) {
	serverNow := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // far from the client's clock
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", serverNow.Format(http.TimeFormat))
		w.Header().Set("Retry-After", serverNow.Add(90*time.Second).Format(http.TimeFormat))
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := newHTTPFetcher(t, nil).Fetch(context.Background(), srv.URL+"/")
	var he *HTTPError
	if !errors.As(err, &he) || he.RetryAfter != 90*time.Second {
		t.Errorf("err = %v; want a 503 with RetryAfter 90s", err)
	}
}

// countingBody is a response body of n bytes that counts what was read.
type countingBody struct {
	n    int64
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	left := b.n - b.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), left)
	b.read.Add(k)
	return int(k), nil
}

func (b *countingBody) Close() error { return nil }

// The body of a redirect or of an error status is not downloaded beyond a
// few KiB (it used to be read up to MaxBodyBytes, on every retry): a short
// one is read to keep the connection, a long one is dropped with it.
func TestHTTPFetcherDoesNotDownloadErrorOrRedirectBodies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		length int64 // Content-Length; -1: unknown
		size   int64
		maxRd  int64
	}{
		{"503, large", http.StatusServiceUnavailable, 2 << 20, 2 << 20, 0},
		{"404, unknown length", http.StatusNotFound, -1, 2 << 20, 0},
		{"301, large", http.StatusMovedPermanently, 2 << 20, 2 << 20, 0},
		{"404, small: read for the connection", http.StatusNotFound, 100, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingBody{n: tt.size}
			rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				h := http.Header{"Content-Type": {"text/html"}, "Location": {"/elsewhere"}}
				return &http.Response{StatusCode: tt.status, Header: h, Body: body, ContentLength: tt.length, Request: req}, nil
			})
			hf := newHTTPFetcher(t, &HTTPConfig{Client: &http.Client{Transport: rt}})
			_, _ = hf.FetchPage(context.Background(), "http://h/")
			if n := body.read.Load(); n > tt.maxRd {
				t.Errorf("read %d bytes of the body, want at most %d", n, tt.maxRd)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
