package cluster_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/crawler/cluster"
)

// A coordinator and one worker process (here in one program, as two
// goroutines; usually two commands) crawl a generated site on loopback.
func Example() {
	site := crawler.NewSite(40, 1) // robots.txt rules, a broken link, off-host links
	web := httptest.NewServer(site)
	defer web.Close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	workers := make(chan error, 1)
	go func() {
		_, err := cluster.RunWorkers(ctx, cluster.WorkersConfig{Coordinator: l.Addr().String(), Fetchers: 2})
		workers <- err
	}()
	rep, err := cluster.RunCoordinator(ctx, cluster.CoordinatorConfig{
		Listener: l,
		Crawl: crawler.CoordinatorConfig{StartURL: web.URL + "/",
			MaxRetries: 3, RetryDelay: time.Millisecond}, // the site answers 503 once to some pages
	})
	if err != nil {
		panic(err)
	}
	if err := <-workers; err != nil {
		panic(err)
	}
	fmt.Println("pages:", rep.Pages == len(site.Reachable()), "failed:", rep.Failed)
	fmt.Println("worker processes:", rep.Workers, "fetchers:", rep.Fetchers)
	for _, s := range rep.Skipped {
		fmt.Printf("skipped %s: %d links\n", s.Reason, s.Links)
	}
	fmt.Println("every URL reported once:", rep.CheckOK)
	// Output:
	// pages: true failed: 1
	// worker processes: 1 fetchers: 2
	// skipped robots.txt: 4 links
	// skipped outside the allowed hosts: 1 links
	// every URL reported once: true
}
