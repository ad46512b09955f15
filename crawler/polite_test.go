package crawler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fastRetries is DefaultConfig with quick retries, so tests do not wait.
func fastRetries() *Config {
	cfg := DefaultConfig()
	cfg.RetryInitialInterval = time.Millisecond
	cfg.RetryMaxInterval = 5 * time.Millisecond
	cfg.RetryMaxElapsed = 5 * time.Second
	return cfg
}

func startSite(t *testing.T, site http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	return srv
}

func newPolite(t *testing.T, cfg *Config) *PoliteFetcher {
	t.Helper()
	p, err := Polite(newHTTPFetcher(t, nil), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkSiteCrawl asserts the crawl of site did what a polite crawl must.
// base is the site's URL ("http://127.0.0.1:8080"), with an explicit port.
func checkSiteCrawl(t *testing.T, seed int64, site *Site, base string, res Result) {
	t.Helper()
	flaky := make(map[string]bool)
	for _, p := range site.Flaky() {
		flaky[p] = true
	}
	expectedHits := 1 // robots.txt
	var wantFetched []string
	for _, p := range site.Reachable() {
		want := 1
		if flaky[p] {
			want = 2
		}
		expectedHits += want
		if got := site.Hits(p); got != want {
			t.Errorf("seed %d: %s requested %d times, want %d", seed, p, got, want)
		}
		if got := site.Served(p); got != 1 {
			t.Errorf("seed %d: %s served %d times, want 1", seed, p, got)
		}
		if !slices.Contains(site.NoIndex(), p) {
			wantFetched = append(wantFetched, base+p)
		}
	}
	slices.Sort(wantFetched)
	if want := prefixed(base, site.NoIndex()); !slices.Equal(res.NoIndex, want) {
		t.Errorf("seed %d: NoIndex = %q, want %q", seed, res.NoIndex, want)
	}
	for _, p := range site.Missing() {
		expectedHits++
		if got := site.Hits(p); got != 1 {
			t.Errorf("seed %d: 404 page %s requested %d times, want 1 (no retry)", seed, p, got)
		}
		var he *HTTPError
		if err := res.Errors[base+p]; !errors.As(err, &he) || he.StatusCode != 404 {
			t.Errorf("seed %d: error for %s = %v, want 404", seed, p, err)
		}
	}
	for _, p := range append(site.Disallowed(), site.Unlinked()...) {
		if got := site.Hits(p); got != 0 {
			t.Errorf("seed %d: %s must never be fetched, requested %d times", seed, p, got)
		}
	}
	if got := site.Hits("/robots.txt"); got != 1 {
		t.Errorf("seed %d: robots.txt requested %d times, want 1", seed, got)
	}
	bu, err := url.Parse(base)
	if err != nil || bu.Port() == "" {
		t.Fatalf("site URL %q: want one with a port (%v)", base, err)
	}
	port := bu.Port()
	if got := site.HostHits("localhost:" + port); got != 0 {
		t.Errorf("seed %d: %d requests went off-host to localhost", seed, got)
	}
	if got := site.TotalHits(); got != expectedHits {
		t.Errorf("seed %d: site got %d requests, want %d", seed, got, expectedHits)
	}
	if !slices.Equal(res.Fetched, wantFetched) {
		t.Errorf("seed %d: fetched %d URLs, want %d", seed, len(res.Fetched), len(wantFetched))
	}
	if len(res.Errors) != len(site.Missing()) {
		t.Errorf("seed %d: errors %v, want only the missing pages", seed, res.Errors)
	}
}

// A polite crawl of generated sites, with every strategy, with and without a
// parallelism bound, does what checkSiteCrawl asks. The matrix runs in
// memory in a synctest bubble (flaky pages' retry backoff takes no real
// time); one crawl goes over loopback TCP so that the real transport is
// covered too.
func TestPoliteCrawlSite(t *testing.T) {
	for _, seed := range []int64{1, 42, 20261129} {
		for _, st := range strategies {
			for _, par := range []int{0, 4} {
				t.Run(fmt.Sprintf("seed%d/%s/par%d", seed, st.name, par), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						site := NewSite(150, seed)
						const base = "http://127.0.0.1:8080"
						f := newMemPolite(t, site, fastRetries())
						res, err := st.run(context.Background(), base+"/", f, WithParallelism(par))
						if err != nil {
							t.Fatalf("seed %d: %v", seed, err)
						}
						checkSiteCrawl(t, seed, site, base, res)
					})
				})
			}
		}
	}
	t.Run("loopback", func(t *testing.T) {
		const seed = 5
		site := NewSite(300, seed)
		srv := startSite(t, site)
		res, err := ConcurrentChannel(context.Background(), srv.URL+"/", newPolite(t, fastRetries()), WithParallelism(4))
		if err != nil {
			t.Fatal(err)
		}
		checkSiteCrawl(t, seed, site, srv.URL, res)
	})
}

func TestCrawler(t *testing.T) {
	const seed = 7
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			site := NewSite(120, seed)
			srv := startSite(t, site)
			cfg := fastRetries()
			cfg.Strategy = st.run
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// An unnormalised start URL is normalised first.
			res, err := c.Crawl(context.Background(), strings.ToUpper(srv.URL[:4])+srv.URL[4:])
			if err != nil {
				t.Fatal(err)
			}
			checkSiteCrawl(t, seed, site, srv.URL, res)
		})
	}
}

func TestCrawlerLimits(t *testing.T) {
	site := NewSite(200, 3)
	srv := startSite(t, site)
	cfg := fastRetries()
	cfg.MaxPages = 25
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Crawl(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetches != 25 {
		t.Errorf("Fetches = %d, want 25", res.Fetches)
	}
	if _, err := c.Crawl(context.Background(), "ftp://x/"); !errors.Is(err, ErrUnsupportedURL) {
		t.Errorf("ftp start URL: err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no agent", func(c *Config) { c.UserAgent = "" }},
		{"no in-flight", func(c *Config) { c.MaxInFlightPerHost = 0 }},
		{"negative delay", func(c *Config) { c.Delay = -time.Second }},
		{"negative retries", func(c *Config) { c.MaxRetries = -1 }},
		{"zero initial interval", func(c *Config) { c.RetryInitialInterval = 0 }},
		{"max below initial", func(c *Config) { c.RetryMaxInterval = time.Millisecond }},
		{"no max elapsed", func(c *Config) { c.RetryMaxElapsed = 0 }},
		{"negative pages", func(c *Config) { c.MaxPages = -1 }},
		{"bad http", func(c *Config) { c.HTTP = &HTTPConfig{Timeout: -time.Second} }},
	}
	if err := DefaultConfig().validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.mutate(cfg)
		if err := cfg.validate(); err == nil {
			t.Errorf("%s: validate succeeded", tt.name)
		}
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
	if _, err := Polite(StaticFetcher{}, nil); err == nil {
		t.Error("Polite of a fetcher that cannot fetch robots.txt succeeded")
	}
	cfg := DefaultConfig()
	cfg.IgnoreRobots = true
	if _, err := Polite(StaticFetcher{}, cfg); err != nil {
		t.Errorf("Polite with IgnoreRobots: %v", err)
	}
}

// scriptedFetcher fails each URL with the errors in its script, then succeeds.
type scriptedFetcher struct {
	mu     sync.Mutex // protects following
	script map[string][]error
	calls  map[string]int
}

func (s *scriptedFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.calls[url]
	s.calls[url]++
	if errs := s.script[url]; n < len(errs) {
		return nil, errs[n]
	}
	return []string{url + "next"}, nil
}

func TestPoliteRetries(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	e := func(code int) error { return &HTTPError{URL: "u", StatusCode: code} }
	tests := []struct {
		name      string
		errs      []error
		retries   int
		wantCalls int
		wantErr   error // nil: success
	}{
		{"success", nil, 3, 1, nil},
		{"503 then ok", []error{e(503)}, 3, 2, nil},
		{"network errors then ok", []error{netErr, netErr, netErr}, 3, 4, nil},
		{"429 then ok", []error{e(429), e(429)}, 3, 3, nil},
		{"5xx exhausts retries", []error{e(500), e(502), e(503), e(504), e(500)}, 3, 4, e(504)},
		{"no retries", []error{e(503)}, 0, 1, e(503)},
		{"404 is final", []error{e(404)}, 3, 1, e(404)},
		{"403 is final", []error{e(403), nil}, 3, 1, e(403)},
		{"500 then 404", []error{e(500), e(404)}, 3, 2, e(404)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &scriptedFetcher{script: map[string][]error{"http://h/p": tt.errs}, calls: map[string]int{}}
			cfg := fastRetries()
			cfg.IgnoreRobots = true
			cfg.MaxRetries = tt.retries
			p, err := Polite(f, cfg)
			if err != nil {
				t.Fatal(err)
			}
			links, err := p.Fetch(context.Background(), "http://h/p")
			if got := f.calls["http://h/p"]; got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
			if tt.wantErr == nil {
				if err != nil || !slices.Equal(links, []string{"http://h/pnext"}) {
					t.Errorf("got %q, %v", links, err)
				}
				return
			}
			var he, want *HTTPError
			errors.As(tt.wantErr, &want)
			if !errors.As(err, &he) || he.StatusCode != want.StatusCode {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPoliteRetryStopsOnCancel(t *testing.T) {
	f := &scriptedFetcher{script: map[string][]error{"http://h/p": {
		&HTTPError{StatusCode: 503}, &HTTPError{StatusCode: 503}, &HTTPError{StatusCode: 503},
	}}, calls: map[string]int{}}
	cfg := DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.RetryInitialInterval = time.Hour // a long backoff that cancel must cut short
	cfg.RetryMaxInterval = time.Hour
	cfg.RetryMaxElapsed = 2 * time.Hour
	p, err := Polite(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = p.Fetch(ctx, "http://h/p")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fetch returned after %v", d)
	}
}

func TestPoliteRobotsUnavailable(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	srv := startSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/robots.txt" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `<a href="/a">a</a>`)
	}))
	cfg := fastRetries()
	cfg.MaxRetries = 2
	f := newPolite(t, cfg)
	res, err := ConcurrentMutex(context.Background(), srv.URL+"/", f)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.Errors[srv.URL+"/"], ErrDisallowed) {
		t.Errorf("errors = %v, want / disallowed", res.Errors)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["/robots.txt"] != 3 || len(hits) != 1 {
		t.Errorf("requests %v; want robots.txt 3 times (1 + 2 retries) and nothing else", hits)
	}
}

func TestPoliteRobotsRules(t *testing.T) {
	srv := startSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/robots.txt":
			fmt.Fprint(w, "User-agent: *\nDisallow: /\n\nUser-agent: semrpc-crawler\nDisallow: /no\nAllow: /no/but-yes\n")
		default:
			fmt.Fprint(w, `<a href="/no/x">1</a><a href="/no/but-yes/y">2</a><a href="/yes">3</a><a href="/nothing">4</a>`)
		}
	}))
	f := newPolite(t, fastRetries())
	links, err := f.Fetch(context.Background(), srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{srv.URL + "/no/but-yes/y", srv.URL + "/yes"}
	if !slices.Equal(links, want) {
		t.Errorf("links = %q, want %q (the group for our agent, not *)", links, want)
	}
	if _, err := f.Fetch(context.Background(), srv.URL+"/no/direct"); !errors.Is(err, ErrDisallowed) {
		t.Errorf("fetch of disallowed URL: err = %v", err)
	}
}

func TestPoliteOtherHosts(t *testing.T) {
	srvB := startSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<a href="/b2">b2</a>`)
	}))
	srvA := startSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<a href="/a2">a2</a><a href="%s/b1">b1</a>`, srvB.URL)
	}))
	for _, allow := range []bool{false, true} {
		cfg := fastRetries()
		cfg.AllowOtherHosts = allow
		res, err := ConcurrentChannel(context.Background(), srvA.URL+"/", newPolite(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{srvA.URL + "/", srvA.URL + "/a2"}
		if allow {
			want = append(want, srvB.URL+"/b1", srvB.URL+"/b2")
			slices.Sort(want)
		}
		if !slices.Equal(res.Fetched, want) {
			t.Errorf("AllowOtherHosts=%v: fetched %q, want %q", allow, res.Fetched, want)
		}
	}
}

// inFlightHandler records the most requests it served at once.
type inFlightHandler struct {
	next http.Handler

	mu  sync.Mutex // protects following
	now int
	max int
}

func (h *inFlightHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.now++
	h.max = max(h.max, h.now)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
	}()
	h.next.ServeHTTP(w, r)
}

func TestPoliteMaxInFlightPerHost(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			site := NewSite(60, 9)
			site.Latency = 3 * time.Millisecond
			h := &inFlightHandler{next: site}
			srv := startSite(t, h)
			cfg := fastRetries()
			cfg.MaxInFlightPerHost = limit
			res, err := ConcurrentMutex(context.Background(), srv.URL+"/", newPolite(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Fetched)+len(res.NoIndex) != len(site.Reachable()) {
				t.Errorf("fetched %d+%d of %d pages", len(res.Fetched), len(res.NoIndex), len(site.Reachable()))
			}
			if h.max > limit {
				t.Errorf("%d requests in flight, limit %d", h.max, limit)
			}
		})
	}
}

// timedHandler records when each request for a path other than robots.txt
// arrived.
type timedHandler struct {
	next http.Handler

	mu    sync.Mutex // protects following
	times []time.Time
}

func (h *timedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/robots.txt" {
		h.mu.Lock()
		h.times = append(h.times, time.Now())
		h.mu.Unlock()
	}
	h.next.ServeHTTP(w, r)
}

// TestPoliteDelays checks that the interval between the starts of requests
// to one host is honoured, from robots.txt's Crawl-delay (capped by
// MaxCrawlDelay) or from Config.Delay: in a synctest bubble, every two page
// requests are at least the interval apart.
func TestPoliteDelays(t *testing.T) {
	tests := []struct {
		name       string
		crawlDelay time.Duration // in robots.txt
		delay      time.Duration // Config.Delay
		maxCrawl   time.Duration // Config.MaxCrawlDelay
		wantGap    time.Duration
	}{
		{"crawl-delay", 40 * time.Millisecond, 0, time.Second, 40 * time.Millisecond},
		{"config delay", 0, 30 * time.Millisecond, time.Second, 30 * time.Millisecond},
		{"larger wins", 10 * time.Millisecond, 30 * time.Millisecond, time.Second, 30 * time.Millisecond},
		{"crawl-delay capped", time.Hour, 0, 20 * time.Millisecond, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				site := NewSite(12, 2)
				site.CrawlDelay = tt.crawlDelay
				h := &timedHandler{next: site}
				cfg := fastRetries()
				cfg.Delay, cfg.MaxCrawlDelay = tt.delay, tt.maxCrawl
				res, err := ConcurrentChannel(context.Background(), "http://127.0.0.1:8080/", newMemPolite(t, h, cfg))
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Fetched)+len(res.NoIndex) != len(site.Reachable()) {
					t.Errorf("fetched %d+%d of %d pages", len(res.Fetched), len(res.NoIndex), len(site.Reachable()))
				}
				h.mu.Lock()
				defer h.mu.Unlock()
				if len(h.times) < 5 {
					t.Fatalf("only %d page requests", len(h.times))
				}
				for i := 1; i < len(h.times); i++ {
					if gap := h.times[i].Sub(h.times[i-1]); gap < tt.wantGap {
						t.Errorf("page requests %d and %d %v apart, want at least %v", i-1, i, gap, tt.wantGap)
					}
				}
			})
		})
	}
}

// Robots rules match a URL's path with unreserved characters unescaped, as
// RFC 9309 (2.2.2) says: a link to /%70rivate (the same resource as
// /private for any server, %70 being 'p') is disallowed by "Disallow:
// /private", and never fetched. (Matched against the path as escaped, it
// bypassed robots.txt.)
func TestPoliteRobotsRulesMatchPercentEncodedPaths(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	srv := startSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++ // net/http has unescaped it: /%70rivate arrives as /private
		mu.Unlock()
		switch r.URL.Path {
		case "/robots.txt":
			fmt.Fprint(w, "User-agent: *\nDisallow: /private\nDisallow: /%7Euser/\n")
		default:
			fmt.Fprint(w, `<a href="/%70rivate/secret">1</a><a href="/%70ublic">2</a><a href="/~user/x">3</a>`)
		}
	}))
	f := newPolite(t, fastRetries())
	links, err := f.Fetch(context.Background(), srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	// Normalize decodes %70 to 'p': the link comes back as /public.
	if want := []string{srv.URL + "/public"}; !slices.Equal(links, want) {
		t.Errorf("links = %q, want %q (escaped and unescaped forms of disallowed paths dropped)", links, want)
	}
	for _, u := range []string{"/%70rivate", "/%70rivate/secret", "/~user/x", "/%7euser/x", "/%7Euser/x"} {
		if _, err := f.Fetch(context.Background(), srv.URL+u); !errors.Is(err, ErrDisallowed) {
			t.Errorf("Fetch(%s): err = %v, want ErrDisallowed", u, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["/private"] != 0 || hits["/private/secret"] != 0 || hits["/~user/x"] != 0 {
		t.Errorf("disallowed pages requested: %v", hits)
	}
}

// robotsOnce is a fetcher whose first robots.txt request blocks until its
// caller gives up; later ones answer 404 (no robots.txt: everything allowed).
type robotsOnce struct {
	robotsCalls atomic.Int32
	entered     chan struct{}
}

func (f *robotsOnce) Fetch(ctx context.Context, url string) ([]string, error) {
	return nil, ctx.Err()
}

func (f *robotsOnce) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	if f.robotsCalls.Add(1) == 1 {
		close(f.entered)
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	return 404, nil, nil
}

// When the caller loading a host's robots.txt gives up (its context ends,
// e.g. a distributed worker that was stopped), the callers waiting for that
// load do not get its "context canceled" as their own Fetch error: one of
// them loads robots.txt again. (Given the loader's error, a distributed
// worker with a live context reported the page as failed for good.)
//
// It runs in a synctest bubble, so that the waiter is known to be waiting
// for the loader (not merely given 50ms to get there) when the loader gives
// up.
func TestPoliteRobotsLoadGivenUpByItsCallerDoesNotFailTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &robotsOnce{entered: make(chan struct{})}
		p, err := Polite(f, fastRetries())
		if err != nil {
			t.Fatal(err)
		}
		loaderCtx, cancelLoader := context.WithCancel(context.Background())
		defer cancelLoader()
		loaderDone := make(chan error, 1)
		go func() {
			_, err := p.Fetch(loaderCtx, "http://h.example/a")
			loaderDone <- err
		}()
		<-f.entered // the loader is fetching robots.txt

		waiterDone := make(chan error, 1)
		go func() {
			_, err := p.Fetch(context.Background(), "http://h.example/b")
			waiterDone <- err
		}()
		synctest.Wait() // the waiter waits for the loader
		if n := f.robotsCalls.Load(); n != 1 {
			t.Fatalf("robots.txt requested %d times while the first load was under way, want 1", n)
		}
		cancelLoader()
		if err := <-loaderDone; err == nil {
			t.Error("the cancelled loader's Fetch succeeded")
		}
		if err := <-waiterDone; err != nil {
			t.Errorf("Fetch with a live context failed because another caller's robots.txt load was cancelled: %v", err)
		}
		if n := f.robotsCalls.Load(); n != 2 {
			t.Errorf("robots.txt requested %d times, want 2 (the waiter loads it again)", n)
		}
	})
}
