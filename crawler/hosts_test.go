package crawler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPoliteMayEnter(t *testing.T) {
	tests := []struct {
		name     string
		page     string
		link     string
		redirect bool
		allowed  []string
		other    bool // Config.AllowOtherHosts
		want     bool
	}{
		{"same host", "http://a.example/x", "http://a.example/y", false, nil, false, true},
		{"same host, other scheme", "http://a.example/x", "https://a.example/y", false, nil, false, true},
		{"same name, other port", "http://a.example/x", "http://a.example:8080/y", false, nil, false, false},
		{"other host", "http://a.example/x", "http://b.example/y", false, nil, false, false},
		{"other host allowed", "http://a.example/x", "http://b.example/y", false, []string{"b.example"}, false, true},
		{"allowed as a URL", "http://a.example/x", "https://b.example/y", false, []string{"https://b.example/"}, false, true},
		{"allowed with port", "http://a.example/x", "http://b.example:81/y", false, []string{"b.example:81"}, false, true},
		{"AllowOtherHosts", "http://a.example/x", "http://z.example/y", false, nil, true, true},
		{"link to www", "http://a.example/x", "http://www.a.example/y", false, nil, false, false},
		{"redirect to www", "http://a.example/x", "https://www.a.example/y", true, nil, false, true},
		{"redirect to apex", "http://www.a.example/x", "http://a.example/y", true, nil, false, true},
		{"redirect elsewhere", "http://a.example/x", "http://b.example/y", true, nil, false, false},
		{"redirect to a www of another host", "http://a.example/x", "http://www.b.example/y", true, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.IgnoreRobots = true
			cfg.AllowOtherHosts = tt.other
			cfg.AllowedHosts = tt.allowed
			p, err := Polite(StaticFetcher{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := normalizeParse(tt.page)
			link, _ := normalizeParse(tt.link)
			if got := p.mayEnter(page, link, tt.redirect); got != tt.want {
				t.Errorf("mayEnter = %v, want %v", got, tt.want)
			}
		})
	}
}

// A redirect to the www variant makes that host allowed for later links.
func TestPoliteRedirectToWWWAllowsIt(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IgnoreRobots = true
	p, err := Polite(StaticFetcher{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	apex, _ := normalizeParse("http://a.example/")
	www, _ := normalizeParse("http://www.a.example/page")
	other, _ := normalizeParse("http://b.example/")
	if p.mayEnter(other, www, false) {
		t.Fatal("www allowed before any redirect")
	}
	p.mayEnter(apex, www, true)
	if !p.mayEnter(other, www, false) {
		t.Error("www not allowed after the redirect to it")
	}
}

func TestConfigAllowedHostsValidated(t *testing.T) {
	for _, h := range []string{"", "http://", "a b.example", "ftp://x.example/", "h:port"} {
		cfg := DefaultConfig()
		cfg.AllowedHosts = []string{h}
		if _, err := New(cfg); err == nil {
			t.Errorf("AllowedHosts %q accepted", h)
		}
	}
}

// Several hosts: the crawl enters the start URL's host and AllowedHosts,
// and goes back and forth between them, but never another host.
func TestCrawlerAllowedHosts(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{} // host+path
	var a, b, c *httptest.Server
	handler := func(name string, body func() string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name+r.URL.Path]++
			mu.Unlock()
			if r.URL.Path == "/robots.txt" {
				fmt.Fprint(w, "User-agent: *\nDisallow: /private\n")
				return
			}
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, body())
		})
	}
	a = startSite(t, handler("a", func() string {
		return fmt.Sprintf(`<a href="/a1">a1</a><a href="%s/b1">b1</a><a href="%s/c1">c1</a>`, b.URL, c.URL)
	}))
	b = startSite(t, handler("b", func() string {
		return fmt.Sprintf(`<a href="/b2">b2</a><a href="%s/a2">a2</a><a href="/private">p</a><a href="%s/c2">c2</a>`, a.URL, c.URL)
	}))
	c = startSite(t, handler("c", func() string { return "" }))

	cfg := fastRetries()
	cfg.AllowedHosts = []string{b.Listener.Addr().String()}
	cr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	res, err := cr.Crawl(context.Background(), a.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.URL + "/", a.URL + "/a1", a.URL + "/a2", b.URL + "/b1", b.URL + "/b2"}
	slices.Sort(want)
	if !slices.Equal(res.Fetched, want) || len(res.Errors) != 0 {
		t.Errorf("fetched %q, errors %v; want %q", res.Fetched, res.Errors, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range hits {
		if k[0] == 'c' || k == "b/private" {
			t.Errorf("%s requested", k)
		}
	}
}

// redirectWorld serves, over one plain and one TLS listener, the hosts
// example.com (http and https) and www.example.com (https) to a client that
// dials them there, and counts requests per URL.
type redirectWorld struct {
	plain, secure *httptest.Server
	client        *http.Client
	dialed        map[string]int // protected by mu

	mu   sync.Mutex // protects following
	hits map[string]int
}

func newRedirectWorld(t *testing.T) *redirectWorld {
	w := &redirectWorld{hits: map[string]int{}, dialed: map[string]int{}}
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		u := scheme + "://" + r.Host + r.URL.Path
		w.mu.Lock()
		w.hits[u]++
		w.mu.Unlock()
		switch {
		case r.URL.Path == "/robots.txt":
			http.NotFound(rw, r)
		case scheme == "http":
			http.Redirect(rw, r, "https://"+r.Host+r.URL.Path, http.StatusMovedPermanently)
		case r.Host == "example.com":
			http.Redirect(rw, r, "https://www.example.com"+r.URL.Path, http.StatusMovedPermanently)
		case r.URL.Path == "/":
			rw.Header().Set("Content-Type", "text/html")
			fmt.Fprint(rw, `<a href="/a">a</a><a href="http://example.com/b">b</a><a href="https://elsewhere.example/">x</a>`)
		default:
			rw.Header().Set("Content-Type", "text/html")
			fmt.Fprint(rw, `<a href="/">home</a>`)
		}
	})
	w.plain = httptest.NewServer(h)
	t.Cleanup(w.plain.Close)
	w.secure = httptest.NewTLSServer(h)
	t.Cleanup(w.secure.Close)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test certificate names neither host
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			w.mu.Lock()
			w.dialed[addr]++
			w.mu.Unlock()
			var d net.Dialer
			switch addr {
			case "example.com:80":
				return d.DialContext(ctx, network, w.plain.Listener.Addr().String())
			case "example.com:443", "www.example.com:443":
				return d.DialContext(ctx, network, w.secure.Listener.Addr().String())
			}
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("no such host in the test")}
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	w.client = &http.Client{Transport: tr}
	return w
}

// Redirects are followed within the allowed hosts: http to https on the
// same host, and the apex to www.
func TestCrawlerFollowsRedirectsHTTPSAndWWW(t *testing.T) {
	w := newRedirectWorld(t)
	cfg := fastRetries()
	cfg.HTTP = &HTTPConfig{Client: w.client}
	cr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	res, err := cr.Crawl(context.Background(), "http://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"http://example.com/", "https://example.com/", "https://www.example.com/",
		"https://www.example.com/a",
		"http://example.com/b", "https://example.com/b", "https://www.example.com/b",
	}
	slices.Sort(want)
	if !slices.Equal(res.Fetched, want) || len(res.Errors) != 0 {
		t.Errorf("fetched %q, errors %v;\nwant %q", res.Fetched, res.Errors, want)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := w.dialed["elsewhere.example:443"]; n != 0 {
		t.Errorf("a host outside the crawl was dialled %d times", n)
	}
	for u, n := range w.hits {
		if n != 1 {
			t.Errorf("%s requested %d times, want once", u, n)
		}
	}
}

// robots.txt is fetched again once RobotsTTL has passed, and its new rules
// apply from then on.
func TestPoliteRobotsRefreshedAfterTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &changingRobots{files: []string{"User-agent: *\nDisallow: /old\n", "User-agent: *\nDisallow: /new\n"}}
		cfg := DefaultConfig()
		cfg.RobotsTTL = time.Hour
		p, err := Polite(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fetch := func(path string) error {
			_, err := p.Fetch(context.Background(), "http://h.example"+path)
			return err
		}
		if err := fetch("/new"); err != nil {
			t.Fatalf("/new under the first rules: %v", err)
		}
		time.Sleep(time.Hour - time.Second)
		if err := fetch("/old"); !errors.Is(err, ErrDisallowed) {
			t.Errorf("/old just before the TTL: err = %v, want ErrDisallowed", err)
		}
		if n := f.calls(); n != 1 {
			t.Fatalf("robots.txt fetched %d times within its TTL, want 1", n)
		}
		time.Sleep(time.Second)
		if err := fetch("/old"); err != nil {
			t.Errorf("/old under the refreshed rules: %v", err)
		}
		if err := fetch("/new"); !errors.Is(err, ErrDisallowed) {
			t.Errorf("/new under the refreshed rules: err = %v, want ErrDisallowed", err)
		}
		if n := f.calls(); n != 2 {
			t.Errorf("robots.txt fetched %d times, want 2", n)
		}
	})
}

func TestConfigRobotsTTLDefault(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.robotsTTL(); got != 24*time.Hour {
		t.Errorf("default robots TTL %v, want 24h", got)
	}
	cfg.RobotsTTL = -time.Second
	if err := cfg.validate(); err == nil {
		t.Error("negative RobotsTTL accepted")
	}
}

// changingRobots serves its robots.txt files in turn (the last one from
// then on) and pages without links.
type changingRobots struct {
	mu    sync.Mutex // protects following
	files []string
	n     int
}

func (f *changingRobots) Fetch(ctx context.Context, u string) ([]string, error) { return nil, nil }

func (f *changingRobots) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body := f.files[min(f.n, len(f.files)-1)]
	f.n++
	return http.StatusOK, []byte(body), nil
}

func (f *changingRobots) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// pageFetcher is a PageFetcher over a map from URL to page.
type pageFetcher map[string]*Page

func (f pageFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	p, err := f.FetchPage(ctx, url)
	if err != nil {
		return nil, err
	}
	return p.Links, nil
}

func (f pageFetcher) FetchPage(ctx context.Context, url string) (*Page, error) {
	if p := f[url]; p != nil {
		return p, nil
	}
	return nil, ErrNotFound
}

// A redirect to the www variant allows that host, but a host allowed that
// way does not pass it on: otherwise a server could walk the crawl through
// www.www.www… hosts, one redirect each, all outside the allowed hosts.
func TestPoliteRedirectToWWWAllowsOneStepOnly(t *testing.T) {
	redirect := func(to string) *Page {
		return &Page{StatusCode: http.StatusMovedPermanently, Links: []string{to}}
	}
	f := pageFetcher{
		"http://a.example/":             redirect("http://www.a.example/"),
		"http://www.a.example/":         redirect("http://www.www.a.example/"),
		"http://www.a.example/back":     redirect("http://a.example/x"),
		"http://www.www.a.example/":     redirect("http://www.www.www.a.example/"),
		"http://b.example/":             redirect("http://www.b.example/"),
		"http://www.b.example/to-apex/": redirect("http://b.example/y"),
	}
	cfg := DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.AllowedHosts = []string{"b.example"}
	p, err := Polite(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		page string
		want []string
	}{
		{"http://a.example/", []string{"http://www.a.example/"}},
		{"http://www.a.example/", nil}, // www.www.a.example: not a variant of an allowed host
		{"http://www.a.example/back", []string{"http://a.example/x"}},
		{"http://b.example/", []string{"http://www.b.example/"}},
		{"http://www.b.example/to-apex/", []string{"http://b.example/y"}},
	}
	for _, tt := range tests {
		got, err := p.Fetch(context.Background(), tt.page)
		if err != nil {
			t.Fatalf("%s: %v", tt.page, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: links %q, want %q", tt.page, got, tt.want)
		}
	}
	page, _ := normalizeParse("http://c.example/")
	for _, h := range []string{"www.www.a.example", "www.www.www.a.example"} {
		if u, _ := normalizeParse("http://" + h + "/"); p.mayEnter(page, u, false) {
			t.Errorf("%s allowed", h)
		}
	}
}

// Links are matched to hosts in normal form, so a Fetcher that returns them
// as written (upper case, default port) does not lose same-host or
// allowed-host links; other hosts stay out whatever their spelling.
func TestPoliteKeepsLinksToItsHostsInAnySpelling(t *testing.T) {
	f := StaticFetcher{"http://a.example/": {
		"HTTP://A.EXAMPLE:80/x",
		"https://B.Example:443/z",
		"http://user:pw@a.example/w",
		"http://C.EXAMPLE/no",
		"http://a.example@c.example/no",
	}}
	cfg := DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.AllowedHosts = []string{"b.example"}
	p, err := Polite(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Fetch(context.Background(), "http://a.example/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"HTTP://A.EXAMPLE:80/x", "https://B.Example:443/z", "http://user:pw@a.example/w"}
	if !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
}

// Every spelling of a host and port maps to one politeness state: a page
// could otherwise split one server into many hosts, each with its own
// in-flight limit and pacing.
func TestHostKeyOneKeyPerHostWhateverTheSpelling(t *testing.T) {
	tests := []struct {
		want      string
		spellings []string
	}{
		{"a.example", []string{"a.example", "A.EXAMPLE:80", "a.example:0080", "http://user@a.example:00080/x", "HTTP://a.example"}},
		{"a.example:8080", []string{"a.example:8080", "a.example:08080", "http://a.example:0008080/"}},
		{"[::1]:8080", []string{"[::1]:8080", "[0:0::1]:8080", "http://[0000:0000:0000:0000:0000:0000:0000:0001]:08080/"}},
	}
	for _, tt := range tests {
		for _, s := range tt.spellings {
			if got, err := HostKey(s); err != nil || got != tt.want {
				t.Errorf("HostKey(%q) = %q, %v; want %q", s, got, err, tt.want)
			}
		}
	}
}

// Links back to a crawl's start host are kept from the other allowed hosts
// whatever drives the crawl: a strategy or DistributedCrawl used the
// PoliteFetcher without Crawler.Crawl's AllowHosts call, and lost them.
func TestPoliteStartHostIsAllowedWithoutCrawler(t *testing.T) {
	web := StaticFetcher{
		"http://a.example/":  {"http://b.example/x"},
		"http://b.example/x": {"http://a.example/y", "http://c.example/z"},
		"http://a.example/y": nil,
		"http://c.example/z": nil,
	}
	want := []string{"http://a.example/", "http://a.example/y", "http://b.example/x"}
	cfg := DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.AllowedHosts = []string{"b.example"}
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			p, err := Polite(web, cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := st.run(context.Background(), "http://a.example/", p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Fetched, want) {
				t.Errorf("fetched %q, want %q", res.Fetched, want)
			}
		})
	}
	t.Run("distributed", func(t *testing.T) {
		p, err := Polite(web, cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := DistributedCrawl(context.Background(), DistributedConfig{StartURL: "http://a.example/", Fetcher: p, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(slices.Values(res.Fetched)); !slices.Equal(got, want) {
			t.Errorf("fetched %q, want %q", got, want)
		}
	})
}
