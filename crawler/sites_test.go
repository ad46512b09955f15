package crawler

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// Three sites on three loopback hosts, linking to each other: a crawl from
// the first, allowed on the other two, fetches every reachable page of each
// exactly once (flaky ones after one 503), nothing disallowed or unlinked,
// each host's robots.txt once, and never more requests at once per host
// than MaxInFlightPerHost.
func TestCrawlerSeveralSites(t *testing.T) {
	const inFlight = 2
	sites := make([]*Site, 3)
	srvs := make([]*httptest.Server, 3)
	for i := range sites {
		sites[i] = NewSite(80, int64(i+1))
		sites[i].Latency = time.Millisecond
		srvs[i] = httptest.NewUnstartedServer(sites[i])
	}
	for i := range sites {
		for j := range sites {
			if j != i {
				sites[i].Peers = append(sites[i].Peers, "http://"+srvs[j].Listener.Addr().String())
			}
		}
		srvs[i].Start()
		t.Cleanup(srvs[i].Close)
	}
	cfg := fastRetries()
	cfg.MaxInFlightPerHost = inFlight
	cfg.AllowedHosts = []string{srvs[1].URL, srvs[2].URL}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Crawl(context.Background(), srvs[0].URL)
	if err != nil {
		t.Fatal(err)
	}

	var wantFetched, wantNoIndex []string
	for i, site := range sites {
		flaky := make(map[string]bool)
		for _, p := range site.Flaky() {
			flaky[p] = true
		}
		for _, p := range site.Reachable() {
			want := 1
			if flaky[p] {
				want = 2
			}
			if got := site.Hits(p); got != want {
				t.Errorf("site %d: %s requested %d times, want %d", i, p, got, want)
			}
			if !slices.Contains(site.NoIndex(), p) {
				wantFetched = append(wantFetched, srvs[i].URL+p)
			}
		}
		wantNoIndex = append(wantNoIndex, prefixed(srvs[i].URL, site.NoIndex())...)
		for _, p := range append(site.Disallowed(), site.Unlinked()...) {
			if got := site.Hits(p); got != 0 {
				t.Errorf("site %d: %s requested %d times, want never", i, p, got)
			}
		}
		if got := site.Hits("/robots.txt"); got != 1 {
			t.Errorf("site %d: robots.txt requested %d times, want 1", i, got)
		}
		if got := site.MaxInFlight(); got > inFlight {
			t.Errorf("site %d: %d requests in flight, limit %d", i, got, inFlight)
		}
	}
	slices.Sort(wantFetched)
	slices.Sort(wantNoIndex)
	if !slices.Equal(res.Fetched, wantFetched) || !slices.Equal(res.NoIndex, wantNoIndex) {
		t.Errorf("fetched %d URLs and %d noindex, want %d and %d", len(res.Fetched), len(res.NoIndex), len(wantFetched), len(wantNoIndex))
	}
	for u, err := range res.Errors {
		var he *HTTPError
		switch {
		case strings.HasSuffix(u, siteMissing) && errors.As(err, &he) && he.StatusCode == 404:
		case strings.Contains(u, "/private/") && errors.Is(err, ErrDisallowed):
		default:
			t.Errorf("unexpected error for %s: %v", u, err)
		}
	}
}

// Without Peers a site's pages are as before, so `make demo` and the
// benchmarks crawl the same web.
func TestSitePeersOnlyAddLinks(t *testing.T) {
	plain, peered := NewSite(50, 3), NewSite(50, 3)
	peered.Peers = []string{"http://127.0.0.1:9"}
	for _, p := range []string{"/", "/d3/p3.html", "/d1/p1.html"} {
		a, b := body(plain, p), body(peered, p)
		if p == "/d1/p1.html" && a != b {
			t.Errorf("%s changed by Peers", p)
		}
		if p != "/d1/p1.html" && (!strings.Contains(b, `href="http://127.0.0.1:9/"`) || strings.Contains(a, "127.0.0.1:9")) {
			t.Errorf("%s: peer link missing with Peers, or present without", p)
		}
	}
	if !strings.Contains(body(peered, "/"), fmt.Sprintf(`href="http://127.0.0.1:9%s"`, peered.Disallowed()[0])) {
		t.Error("/ does not link to the peer's disallowed page")
	}
}

func body(s *Site, path string) string {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "http://h"+path, nil))
	return rec.Body.String()
}
