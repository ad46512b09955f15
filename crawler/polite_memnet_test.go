package crawler

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// handlerTransport is an http.RoundTripper that answers every request by
// calling a handler in the caller's goroutine, whatever host the URL names:
// no sockets, no background goroutines. An HTTPFetcher using it can run
// inside a testing/synctest bubble, where pacing, Retry-After and retry
// backoff take no real time.
type handlerTransport struct{ h http.Handler }

// RoundTrip implements http.RoundTripper.
func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.Host = req.URL.Host
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// newMemPolite returns a PoliteFetcher over an HTTPFetcher whose requests
// h serves in memory (see handlerTransport).
func newMemPolite(t *testing.T, h http.Handler, cfg *Config) *PoliteFetcher {
	t.Helper()
	hf := newHTTPFetcher(t, &HTTPConfig{Client: &http.Client{Transport: handlerTransport{h}}})
	p, err := Polite(hf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
