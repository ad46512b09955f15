package crawler_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/semrpc/semrpc/crawler"
)

var web = crawler.StaticFetcher{
	"https://go.dev/":          {"https://go.dev/doc/", "https://go.dev/pkg/"},
	"https://go.dev/doc/":      {"https://go.dev/", "https://go.dev/doc/tour/"},
	"https://go.dev/pkg/":      {"https://go.dev/", "https://go.dev/pkg/fmt/"},
	"https://go.dev/pkg/fmt/":  {"https://go.dev/pkg/"},
	"https://go.dev/doc/tour/": {"https://go.dev/doc/"},
}

func ExampleSerial() {
	res, err := crawler.Serial(context.Background(), "https://go.dev/", web)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Fetches, "fetches")
	for _, u := range res.Fetched {
		fmt.Println(u)
	}
	// Output:
	// 5 fetches
	// https://go.dev/
	// https://go.dev/doc/
	// https://go.dev/doc/tour/
	// https://go.dev/pkg/
	// https://go.dev/pkg/fmt/
}

func ExampleConcurrentChannel() {
	web := crawler.StaticFetcher{
		"a": {"b", "c"},
		"b": {"a", "c", "missing"},
		"c": {"a"},
	}
	res, _ := crawler.ConcurrentChannel(context.Background(), "a", web, crawler.WithParallelism(2))
	fmt.Println(res.Fetched, len(res.Errors), "error")
	// Output: [a b c] 1 error
}

func ExampleConcurrentMutex() {
	res, _ := crawler.ConcurrentMutex(context.Background(), "https://go.dev/", web, crawler.WithMaxDepth(1))
	fmt.Println(res.Fetched)
	// Output: [https://go.dev/ https://go.dev/doc/ https://go.dev/pkg/]
}

func ExampleNormalize() {
	for _, raw := range []string{
		"HTTP://Example.COM:80",
		"https://example.com:443/a/./b/../c?q=1#frag",
		"mailto:someone@example.com",
	} {
		n, err := crawler.Normalize(raw)
		fmt.Println(n, err != nil)
	}
	// Output:
	// http://example.com/ false
	// https://example.com/a/c?q=1 false
	//  true
}

func ExampleExtractLinks() {
	base, _ := url.Parse("http://example.com/docs/index.html")
	links, _ := crawler.ExtractLinks(base, strings.NewReader(
		`<a href="intro.html#top">intro</a> <a href="../about/">about</a> <a href="mailto:x@y.z">mail</a>`))
	fmt.Println(links)
	// Output: [http://example.com/docs/intro.html http://example.com/about/]
}

func ExampleCrawler() {
	site := crawler.NewSite(50, 1)
	srv := httptest.NewServer(site)
	defer srv.Close()

	cfg := crawler.DefaultConfig()
	cfg.Strategy = crawler.ConcurrentMutex
	cfg.RetryInitialInterval = 10 * time.Millisecond
	c, err := crawler.New(cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	res, err := c.Crawl(context.Background(), srv.URL)
	if err != nil {
		panic(err)
	}
	fmt.Println("all pages fetched:", len(res.Fetched)+len(res.NoIndex) == len(site.Reachable()))
	fmt.Println("pages not indexed (noindex):", len(res.NoIndex))
	fmt.Println("robots.txt requests:", site.Hits("/robots.txt"))
	fmt.Println("disallowed page requests:", site.Hits(site.Disallowed()[0]))
	// Output:
	// all pages fetched: true
	// pages not indexed (noindex): 1
	// robots.txt requests: 1
	// disallowed page requests: 0
}

func ExampleScheduler() {
	s, _ := crawler.NewScheduler("a", crawler.SchedulerConfig{LeaseTimeout: 10 * time.Second})
	t0 := time.Unix(0, 0)

	dead, _ := s.Lease("worker-1", t0) // worker-1 crashes with this task
	_, ok := s.Lease("worker-2", t0)
	fmt.Println("more work before expiry:", ok)

	again, _ := s.Lease("worker-2", t0.Add(11*time.Second)) // the lease expired
	fmt.Println(again.URL, "reassigned to", again.Worker)
	fmt.Println(s.Report(again.ID, nil, t0.Add(12*time.Second)))
	fmt.Println(s.Report(dead.ID, nil, t0.Add(13*time.Second))) // worker-1 was only slow
	fmt.Println("done:", s.Done())
	fmt.Printf("%+v\n", s.Stats())
	// Output:
	// more work before expiry: false
	// a reassigned to worker-2
	// accepted
	// duplicate
	// done: true
	// {Pages:1 Failed:0 Leases:2 Reassigned:1 Duplicates:1 Queued:0 Leased:0 RepeatedLeases:0 Retried:0 Released:0}
}
