package crawler_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/semrpc/semrpc/crawler"
)

func ExampleHostKey() {
	for _, raw := range []string{
		"https://user:pw@Example.COM:443/a?b",
		"http://127.0.0.1:8080/x",
		"http://bücher.example/",
		"www.example.com",
	} {
		key, err := crawler.HostKey(raw)
		fmt.Println(key, err)
	}
	// Output:
	// example.com <nil>
	// 127.0.0.1:8080 <nil>
	// xn--bcher-kva.example <nil>
	// www.example.com <nil>
}

// A crawl coordinator hands a host from one worker's PoliteFetcher to
// another's: the host asked the first to back off, so the second must wait
// as long.
func ExamplePoliteFetcher_HostPacing() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	hf, err := crawler.NewHTTPFetcher(nil)
	if err != nil {
		panic(err)
	}
	defer hf.Close()
	cfg := crawler.DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.MaxRetries = 0
	cfg.MaxCrawlDelay = 0 // no cap on Retry-After
	oldOwner, _ := crawler.Polite(hf, cfg)
	newOwner, _ := crawler.Polite(hf, cfg)

	_, err = oldOwner.Fetch(context.Background(), srv.URL+"/")
	fmt.Println(err != nil)
	next, limit := oldOwner.HostPacing(srv.URL)
	fmt.Println(time.Until(next).Round(time.Minute), limit)

	if err := newOwner.SetHostNotBefore(srv.URL, next); err != nil {
		panic(err)
	}
	handed, _ := newOwner.HostPacing(srv.URL)
	fmt.Println(handed.Equal(next))
	// Output:
	// true
	// 2m0s 8
	// true
}

// Config.AllowedHosts lets a crawl enter hosts besides its start URL's.
func ExampleConfig_allowedHosts() {
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<a href="/guide">guide</a>`)
	}))
	defer docs.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<a href="%s/">docs</a> <a href="%s/">other</a>`, docs.URL, other.URL)
	}))
	defer home.Close()

	cfg := crawler.DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.AllowedHosts = []string{docs.URL}
	c, err := crawler.New(cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	res, err := c.Crawl(context.Background(), home.URL)
	if err != nil {
		panic(err)
	}
	names := strings.NewReplacer(home.URL, "home", docs.URL, "docs", other.URL, "other")
	for _, u := range res.Fetched {
		fmt.Println(names.Replace(u))
	}
	// Unordered output:
	// home/
	// docs/
	// docs/guide
}
