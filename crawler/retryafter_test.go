package crawler

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A 503 (or 429) with Retry-After, read by HTTPFetcher from a response, is
// retried no sooner than the server asked, capped at MaxCrawlDelay. In a
// synctest bubble over an in-memory transport: the waits take no real time
// and are measured exactly.
func TestPoliteHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		maxDelay   time.Duration
		wantGap    time.Duration // at least; the backoff's jitter may add to it
	}{
		{"503 asks for 1s", http.StatusServiceUnavailable, "1", 10 * time.Second, time.Second},
		{"429 asks for 1s", http.StatusTooManyRequests, "1", 10 * time.Second, time.Second},
		{"capped by MaxCrawlDelay", http.StatusServiceUnavailable, "3600", 300 * time.Millisecond, 300 * time.Millisecond},
		{"no cap", http.StatusServiceUnavailable, "4", 0, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var hits []time.Time
				mux := http.NewServeMux()
				mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
				mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					hits = append(hits, time.Now())
					first := len(hits) == 1
					mu.Unlock()
					if first {
						w.Header().Set("Retry-After", tt.retryAfter)
						w.WriteHeader(tt.status)
						return
					}
					w.Header().Set("Content-Type", "text/html")
					w.Write([]byte(`<a href="/x">x</a>`))
				})
				cfg := fastRetries()
				cfg.MaxCrawlDelay = tt.maxDelay
				p := newMemPolite(t, mux, cfg)
				links, err := p.Fetch(context.Background(), "http://127.0.0.1:8080/")
				if err != nil {
					t.Fatal(err)
				}
				if want := []string{"http://127.0.0.1:8080/x"}; !slices.Equal(links, want) {
					t.Errorf("links %q, want %q", links, want)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(hits) != 2 {
					t.Fatalf("%d requests, want 2", len(hits))
				}
				// fastRetries' backoff adds at most 5ms of its own.
				if gap := hits[1].Sub(hits[0]); gap < tt.wantGap || gap > tt.wantGap+10*time.Millisecond {
					t.Errorf("retried after %v; the server asked for %ss (cap %v), want %v", gap, tt.retryAfter, tt.maxDelay, tt.wantGap)
				}
			})
		})
	}
}

func TestRetryAfterHeaderForms(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	date := func(t time.Time) string { return t.Format(http.TimeFormat) }
	tests := []struct {
		name       string
		retryAfter string
		date       string // Date header, or ""
		want       time.Duration
	}{
		{"none", "", "", 0},
		{"seconds", "120", "", 2 * time.Minute},
		{"seconds with spaces", " 7 ", "", 7 * time.Second},
		{"zero", "0", "", 0},
		{"negative", "-5", "", 0},
		{"garbage", "soon", "", 0},
		{"huge seconds do not overflow", "99999999999999999999", "", 0}, // not a uint64: ignored
		{"largest seconds", "18446744073709551615", "", time.Duration(math.MaxInt64/time.Second) * time.Second},
		{"HTTP-date against now", date(now.Add(90 * time.Second)), "", 90 * time.Second},
		{"HTTP-date against the server's Date", date(now.Add(time.Hour)), date(now.Add(59 * time.Minute)), time.Minute},
		{"HTTP-date in the past", date(now.Add(-time.Hour)), "", 0},
		{"RFC 850 date", now.Add(30 * time.Second).Format(time.RFC850), "", 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.retryAfter, got, tt.want)
			}
		})
	}
}

// backOffFetcher answers every URL in script with its errors in turn, then
// with no links; it records, per URL, when each call started.
type backOffFetcher struct {
	mu     sync.Mutex // protects following
	script map[string][]error
	calls  map[string][]time.Time
}

func (f *backOffFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.calls[url])
	f.calls[url] = append(f.calls[url], time.Now())
	if n < len(f.script[url]) {
		return nil, f.script[url][n]
	}
	return nil, nil
}

func (f *backOffFetcher) callTimes(url string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls[url]...)
}

func unavailable(d time.Duration) error {
	return &HTTPError{URL: "u", StatusCode: http.StatusServiceUnavailable, RetryAfter: d}
}

// Retry-After, in virtual time: with MaxCrawlDelay zero ("no cap") the
// whole wait is honoured (it used to become no wait at all); a cap shortens
// it; a wait longer than RetryMaxElapsed is not retried.
func TestRetryAfterWaitIsCappedOnlyByMaxCrawlDelay(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		maxDelay   time.Duration
		maxElapsed time.Duration
		wantCalls  int
		wantGap    time.Duration // exact, in virtual time
	}{
		{"no cap", time.Hour, 0, 2 * time.Hour, 2, time.Hour},
		{"capped", time.Hour, time.Minute, 2 * time.Hour, 2, time.Minute},
		{"below the cap", 30 * time.Second, time.Minute, 2 * time.Hour, 2, 30 * time.Second},
		{"beyond RetryMaxElapsed", 3 * time.Hour, 0, 2 * time.Hour, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &backOffFetcher{script: map[string][]error{"http://h/a": {unavailable(tt.retryAfter)}}, calls: map[string][]time.Time{}}
				cfg := DefaultConfig()
				cfg.IgnoreRobots = true
				cfg.RetryInitialInterval, cfg.RetryMaxInterval = time.Millisecond, time.Millisecond
				cfg.MaxCrawlDelay, cfg.RetryMaxElapsed = tt.maxDelay, tt.maxElapsed
				p, err := Polite(f, cfg)
				if err != nil {
					t.Fatal(err)
				}
				_, err = p.Fetch(context.Background(), "http://h/a")
				calls := f.callTimes("http://h/a")
				if len(calls) != tt.wantCalls {
					t.Fatalf("%d calls, want %d (err %v)", len(calls), tt.wantCalls, err)
				}
				if tt.wantCalls == 1 {
					var he *HTTPError
					if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
						t.Errorf("err = %v, want the 503", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				// The backoff's own millisecond may come on top.
				if gap := calls[1].Sub(calls[0]); gap < tt.wantGap || gap > tt.wantGap+10*time.Millisecond {
					t.Errorf("retried after %v, want %v", gap, tt.wantGap)
				}
			})
		})
	}
}

// A Retry-After holds back the whole host, not only the URL that got it.
func TestRetryAfterHoldsBackTheWholeHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &backOffFetcher{script: map[string][]error{"http://h/a": {unavailable(time.Hour)}}, calls: map[string][]time.Time{}}
		cfg := DefaultConfig()
		cfg.IgnoreRobots = true
		cfg.MaxCrawlDelay, cfg.RetryMaxElapsed = 0, 2*time.Hour
		p, err := Polite(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		done := make(chan error, 1)
		go func() { _, err := p.Fetch(context.Background(), "http://h/a"); done <- err }()
		synctest.Wait() // /a got its 503 and waits for the hour
		if _, err := p.Fetch(context.Background(), "http://h/b"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if b := f.callTimes("http://h/b"); len(b) != 1 || b[0].Sub(start) < time.Hour {
			t.Errorf("/b requested at +%v, during the host's Retry-After hour", b[0].Sub(start))
		}
		// Another host is not held back.
		before := time.Now()
		if _, err := p.Fetch(context.Background(), "http://other/c"); err != nil {
			t.Fatal(err)
		}
		if c := f.callTimes("http://other/c"); !c[0].Equal(before) {
			t.Errorf("another host waited %v", c[0].Sub(before))
		}
	})
}

// HostPacing reports what SetHostNotBefore needs to hand a host's pacing
// from one PoliteFetcher to another, as a crawl coordinator moving a host
// between workers does.
func TestHostPacingHandsOverRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.IgnoreRobots = true
		cfg.MaxRetries = 0
		cfg.MaxCrawlDelay = 0
		cfg.RetryMaxElapsed = 2 * time.Hour
		cfg.MaxInFlightPerHost = 3
		f1 := &backOffFetcher{script: map[string][]error{"http://h:8080/a": {unavailable(time.Hour)}}, calls: map[string][]time.Time{}}
		p1, err := Polite(f1, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if next, limit := p1.HostPacing("h:8080"); !next.IsZero() || limit != 3 {
			t.Errorf("unknown host: HostPacing = %v, %d; want zero time, 3", next, limit)
		}
		start := time.Now()
		if _, err := p1.Fetch(context.Background(), "http://h:8080/a"); err == nil {
			t.Fatal("the 503 was not reported")
		}
		next, limit := p1.HostPacing("h:8080")
		if !next.Equal(start.Add(time.Hour)) || limit != 3 {
			t.Fatalf("HostPacing = +%v, %d; want +1h, 3", next.Sub(start), limit)
		}
		if n2, _ := p1.HostPacing("http://H:8080/any/path"); !n2.Equal(next) {
			t.Errorf("HostPacing of a URL on the host = %v, want %v", n2, next)
		}

		f2 := &backOffFetcher{calls: map[string][]time.Time{}}
		p2, err := Polite(f2, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p2.SetHostNotBefore("h:8080", next); err != nil {
			t.Fatal(err)
		}
		if err := p2.SetHostNotBefore("h:8080", start); err != nil { // earlier: no effect
			t.Fatal(err)
		}
		if _, err := p2.Fetch(context.Background(), "http://h:8080/b"); err != nil {
			t.Fatal(err)
		}
		if b := f2.callTimes("http://h:8080/b"); !b[0].Equal(next) {
			t.Errorf("second fetcher requested at +%v, want +1h", b[0].Sub(start))
		}
		if err := p2.SetHostNotBefore("http://", next); err == nil {
			t.Error("SetHostNotBefore accepted a URL without a host")
		}
	})
}

// The interval from robots.txt's Crawl-delay shows in HostPacing.
func TestHostPacingReportsCrawlDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &robotsFetcher{robots: "User-agent: *\nCrawl-delay: 5\n"}
		p, err := Polite(f, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := p.Fetch(context.Background(), "http://h/a"); err != nil {
			t.Fatal(err)
		}
		if next, _ := p.HostPacing("h"); !next.Equal(start.Add(5 * time.Second)) {
			t.Errorf("HostPacing next = +%v, want +5s", next.Sub(start))
		}
	})
}

// robotsFetcher serves a fixed robots.txt and pages without links.
type robotsFetcher struct{ robots string }

func (f *robotsFetcher) Fetch(ctx context.Context, url string) ([]string, error) { return nil, nil }

func (f *robotsFetcher) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	return http.StatusOK, []byte(f.robots), nil
}

// A host that asked for a longer wait than RetryMaxElapsed is not requested
// during it: its other URLs fail at once with ErrHostBackingOff, and are
// fetched normally once the wait is over.
func TestRetryAfterBeyondRetryMaxElapsedFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &backOffFetcher{script: map[string][]error{"http://h/a": {unavailable(3 * time.Hour)}}, calls: map[string][]time.Time{}}
		cfg := DefaultConfig()
		cfg.IgnoreRobots = true
		cfg.MaxCrawlDelay, cfg.RetryMaxElapsed = 0, time.Hour
		p, err := Polite(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := p.Fetch(context.Background(), "http://h/a"); err == nil {
			t.Fatal("the 503 was not reported")
		}
		_, err = p.Fetch(context.Background(), "http://h/b")
		if !errors.Is(err, ErrHostBackingOff) || Retryable(err) {
			t.Errorf("fetch during the 3h wait: err = %v (Retryable %v), want ErrHostBackingOff", err, Retryable(err))
		}
		if n := len(f.callTimes("http://h/b")); n != 0 || time.Since(start) != 0 {
			t.Errorf("%d requests, %v waited; want none", n, time.Since(start))
		}
		time.Sleep(2*time.Hour + time.Second) // the wait now ends within RetryMaxElapsed
		if _, err := p.Fetch(context.Background(), "http://h/b"); err != nil {
			t.Fatal(err)
		}
		if b := f.callTimes("http://h/b"); len(b) != 1 || b[0].Before(start.Add(3*time.Hour)) {
			t.Errorf("/b requested at %v, before the host's wait ended", b)
		}
	})
}

// A host seeded (SetHostNotBefore) far beyond RetryMaxElapsed is not
// touched at all, not even for its robots.txt.
func TestSetHostNotBeforeHoldsRobotsTooAndFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &changingRobots{files: []string{"User-agent: *\nAllow: /\n"}}
		cfg := DefaultConfig()
		cfg.RetryMaxElapsed = time.Minute
		p, err := Polite(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := p.SetHostNotBefore("h.example", start.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Fetch(context.Background(), "http://h.example/a"); !errors.Is(err, ErrHostBackingOff) {
			t.Errorf("err = %v, want ErrHostBackingOff", err)
		}
		if n := f.calls(); n != 0 || time.Since(start) != 0 {
			t.Errorf("robots.txt fetched %d times after %v, want none at once", n, time.Since(start))
		}
		// Within RetryMaxElapsed of the end: Fetch waits for it, robots.txt included.
		time.Sleep(time.Hour - time.Minute)
		if _, err := p.Fetch(context.Background(), "http://h.example/a"); err != nil {
			t.Fatal(err)
		}
		if n := f.calls(); n != 1 || time.Since(start) != time.Hour {
			t.Errorf("robots.txt fetched %d times, Fetch done at +%v; want once, +1h", n, time.Since(start))
		}
	})
}

// gatedFetcher is a backOffFetcher whose calls for gated URLs block until
// their gate is closed.
type gatedFetcher struct {
	*backOffFetcher
	gates map[string]chan struct{}
}

func (f *gatedFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	if g := f.gates[url]; g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.backOffFetcher.Fetch(ctx, url)
}

// Requests already waiting for their turn (Delay, Crawl-delay) when a
// Retry-After arrives do not start during it: they used to start at the
// time reserved before the Retry-After was known.
func TestRetryAfterHoldsBackRequestsAlreadyWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		f := &gatedFetcher{
			backOffFetcher: &backOffFetcher{script: map[string][]error{"http://h/a": {unavailable(time.Hour)}}, calls: map[string][]time.Time{}},
			gates:          map[string]chan struct{}{"http://h/a": gate},
		}
		cfg := DefaultConfig()
		cfg.IgnoreRobots = true
		cfg.MaxInFlightPerHost = 3
		cfg.Delay = 10 * time.Second
		cfg.MaxCrawlDelay, cfg.RetryMaxElapsed = 0, 2*time.Hour
		p, err := Polite(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		errs := make(chan error, 3)
		fetch := func(u string) { _, err := p.Fetch(context.Background(), u); errs <- err }
		go fetch("http://h/a")
		synctest.Wait() // /a has started, at +0
		go fetch("http://h/b")
		go fetch("http://h/c")
		synctest.Wait() // /b and /c wait for +10s and +20s
		close(gate)     // /a's 503 asks for an hour
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range []string{"http://h/b", "http://h/c"} {
			calls := f.callTimes(u)
			if len(calls) != 1 {
				t.Fatalf("%s requested %d times, want once", u, len(calls))
			}
			if at := calls[0].Sub(start); at < time.Hour {
				t.Errorf("%s requested at +%v, during the host's Retry-After hour", u, at)
			}
		}
		// Once the hour is over, Delay still spaces the three requests.
		var all []time.Time
		for _, u := range []string{"http://h/a", "http://h/b", "http://h/c"} {
			all = append(all, f.callTimes(u)...)
		}
		slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
		for i := 2; i < len(all); i++ { // all[0] is /a's 503
			if gap := all[i].Sub(all[i-1]); gap < cfg.Delay {
				t.Errorf("requests %d and %d only %v apart, want >= %v", i-1, i, gap, cfg.Delay)
			}
		}
	})
}

// Only the first MaxRobotsBytes of a robots.txt count (RFC 9309 allows
// ignoring what lies beyond 500 KiB), without the line cut there: a hostile
// robots.txt cannot make the crawler hold megabytes of rules per origin,
// and a cut rule does not become a different one.
func TestRobotsTxtBeyondMaxRobotsBytesIsIgnored(t *testing.T) {
	head := "User-agent: *\nDisallow: /early\n"
	pad := strings.Repeat("# padding\n", (MaxRobotsBytes-len(head))/10)
	cut := "Disallow: /cut" + strings.Repeat("x", 100) + "\n" // crosses MaxRobotsBytes
	robots := head + pad + cut + "Disallow: /late\n"
	if n := len(head + pad); n >= MaxRobotsBytes || n+len(cut) <= MaxRobotsBytes {
		t.Fatalf("the cut line does not cross the limit (%d..%d)", n, n+len(cut))
	}
	check := func(t *testing.T, p *PoliteFetcher, base string) {
		t.Helper()
		for path, disallowed := range map[string]bool{"/early": true, "/late": false, "/cut": false, "/cutxxx": false, "/other": false} {
			_, err := p.Fetch(context.Background(), base+path)
			if got := errors.Is(err, ErrDisallowed); got != disallowed {
				t.Errorf("%s: err = %v, want disallowed %v", path, err, disallowed)
			}
		}
	}
	t.Run("any RobotsFetcher", func(t *testing.T) {
		p, err := Polite(&robotsFetcher{robots: robots}, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, "http://h")
	})
	t.Run("HTTPFetcher", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, robots+strings.Repeat("Disallow: /\n", 100<<10))
			})
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {})
			hf := newHTTPFetcher(t, &HTTPConfig{Client: &http.Client{Transport: handlerTransport{mux}}})
			_, body, err := hf.FetchRobots(context.Background(), "http://h/robots.txt")
			if err != nil {
				t.Fatal(err)
			}
			if len(body) > MaxRobotsBytes || !strings.HasSuffix(string(body), "\n") {
				t.Errorf("FetchRobots returned %d bytes ending %q; want at most %d, whole lines", len(body), body[max(0, len(body)-10):], MaxRobotsBytes)
			}
			p, err := Polite(hf, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			check(t, p, "http://h")
		})
	})
}
