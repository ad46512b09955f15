package crawler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// noIndexSite serves a small site where two pages ask not to be indexed,
// one by <meta name="robots">, one by an X-Robots-Tag header, and each of
// them is the only way to a page of its own. It counts requests per path.
type noIndexSite struct {
	mu   sync.Mutex
	hits map[string]int
}

// noIndexPages maps each path to its robots directive (meta or header) and
// its links.
var noIndexPages = map[string]struct {
	meta, header string
	links        []string
}{
	"/":            {links: []string{"/meta.html", "/header.html", "/plain.html"}},
	"/meta.html":   {meta: "noindex", links: []string{"/via-meta.html"}},
	"/header.html": {header: "noindex", links: []string{"/via-header.html"}},
	"/plain.html":  {links: []string{"/"}},
	// Reachable only through a noindex page: its links were followed.
	"/via-meta.html":   {links: []string{"/meta.html"}},
	"/via-header.html": {},
}

func (s *noIndexSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	s.mu.Unlock()
	p, ok := noIndexPages[r.URL.Path]
	if !ok {
		http.NotFound(w, r) // robots.txt too: everything is allowed
		return
	}
	if p.header != "" {
		w.Header().Set("X-Robots-Tag", p.header)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<html><head>")
	if p.meta != "" {
		fmt.Fprintf(w, `<meta name="robots" content="%s">`, p.meta)
	}
	fmt.Fprint(w, "</head><body>")
	for _, l := range p.links {
		fmt.Fprintf(w, `<a href="%s">%s</a>`, l, l)
	}
	fmt.Fprint(w, "</body></html>")
}

func (s *noIndexSite) hitsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// A page that asks not to be indexed, by <meta name="robots"> or by
// X-Robots-Tag, is fetched once and its links are followed, but every
// strategy (and the distributed crawl) lists it in NoIndex, not in
// Fetched; through an HTTPFetcher or a PoliteFetcher alike.
func TestNoIndexPageIsCrawledButNotIndexed(t *testing.T) {
	distributed := func(ctx context.Context, url string, f Fetcher, _ ...Option) (Result, error) {
		res, err := DistributedCrawl(ctx, DistributedConfig{StartURL: url, Fetcher: f, Workers: 3})
		if err != nil {
			return Result{}, err
		}
		if res.Check != nil {
			return Result{}, res.Check
		}
		out := Result{Fetched: res.Fetched, NoIndex: res.NoIndex, Errors: map[string]error{}, Fetches: res.Workers.Fetches}
		for u, reason := range res.Failed {
			out.Errors[u] = fmt.Errorf("%s", reason)
		}
		return out, nil
	}
	strategies := []struct {
		name string
		s    Strategy
	}{
		{"serial", Serial}, {"mutex", ConcurrentMutex}, {"channel", ConcurrentChannel}, {"distributed", distributed},
	}
	fetchers := []struct {
		name string
		make func(t *testing.T) Fetcher
	}{
		{"http", func(t *testing.T) Fetcher { return newHTTPFetcher(t, nil) }},
		{"polite", func(t *testing.T) Fetcher { return newPolite(t, fastRetries()) }},
	}
	for _, st := range strategies {
		for _, fc := range fetchers {
			t.Run(st.name+"/"+fc.name, func(t *testing.T) {
				site := &noIndexSite{hits: map[string]int{}}
				srv := httptest.NewServer(site)
				t.Cleanup(srv.Close)
				res, err := st.s(context.Background(), srv.URL+"/", fc.make(t), WithParallelism(4))
				if err != nil {
					t.Fatal(err)
				}
				wantFetched := []string{srv.URL + "/", srv.URL + "/plain.html", srv.URL + "/via-header.html", srv.URL + "/via-meta.html"}
				wantNoIndex := []string{srv.URL + "/header.html", srv.URL + "/meta.html"}
				if !slices.Equal(res.Fetched, wantFetched) {
					t.Errorf("Fetched = %v, want %v", res.Fetched, wantFetched)
				}
				if !slices.Equal(res.NoIndex, wantNoIndex) {
					t.Errorf("NoIndex = %v, want %v", res.NoIndex, wantNoIndex)
				}
				if len(res.Errors) != 0 || res.Fetches != len(noIndexPages) {
					t.Errorf("%d fetches, errors %v; want %d fetches, no error", res.Fetches, res.Errors, len(noIndexPages))
				}
				for p := range noIndexPages {
					if n := site.hitsOf(p); n != 1 {
						t.Errorf("%s requested %d times, want 1", p, n)
					}
				}
			})
		}
	}
}

// A plain Fetcher (not a PageFetcher) cannot tell noindex pages: all its
// pages are indexed.
func TestPlainFetcherPagesAreAllIndexed(t *testing.T) {
	f := StaticFetcher{"a": {"b"}, "b": nil}
	for _, st := range []Strategy{Serial, ConcurrentMutex, ConcurrentChannel} {
		res, err := st(context.Background(), "a", f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Fetched, []string{"a", "b"}) || res.NoIndex != nil {
			t.Errorf("Fetched %v, NoIndex %v; want [a b] and none", res.Fetched, res.NoIndex)
		}
	}
}

// A noindex report survives a coordinator restart on its store: the URL is
// still listed as not indexed, and still counts as a page fetched.
func TestNoIndexReportIsStoredAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/", LeaseTimeout: time.Minute, Store: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := lease(t, c, "w")
	report(t, c, ReportArgs{TaskID: r.Task.ID, URL: r.Task.URL, Links: []string{"http://h/a"}, NoIndex: true, Attempt: 1})
	r = lease(t, c, "w")
	report(t, c, ReportArgs{TaskID: r.Task.ID, URL: r.Task.URL, Attempt: 1})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	c2, err := NewCoordinator(CoordinatorConfig{Store: st2, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fetched, failed := c2.Result()
	if !slices.Equal(fetched, []string{"http://h/a"}) || len(failed) != 0 {
		t.Errorf("Result = %v, %v; want [http://h/a] and no failure", fetched, failed)
	}
	if got := c2.NoIndex(); !slices.Equal(got, []string{"http://h/"}) {
		t.Errorf("NoIndex = %v, want [http://h/]", got)
	}
	if s := c2.Stats(); s.Pages != 2 {
		t.Errorf("Stats().Pages = %d, want 2 (the noindex page counts as fetched)", s.Pages)
	}
	if err := c2.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// prefixed returns base+p for each path, sorted.
func prefixed(base string, paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		out = append(out, base+p)
	}
	slices.Sort(out)
	return out
}
