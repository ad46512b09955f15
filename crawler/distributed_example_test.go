package crawler_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/crawler/labnet"
)

func ExampleDistributedCrawl() {
	web := crawler.StaticFetcher{
		"a": {"b", "c"},
		"b": {"a", "c", "d"},
		"c": {"a"},
		"d": {"e"}, // e does not exist
	}
	res, err := crawler.DistributedCrawl(context.Background(), crawler.DistributedConfig{
		StartURL: "a",
		Fetcher:  web, // usually a PoliteFetcher
		Workers:  3,
		// A simulated network losing 20% of requests and of replies,
		// and delivering 20% of requests twice.
		Network: &labnet.Network{Loss: 0.2, Duplicate: 0.2, Seed: 1},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("fetched:", res.Fetched)
	fmt.Println("failed:", len(res.Failed))
	fmt.Println("every URL reported once:", res.Check == nil)
	// Output:
	// fetched: [a b c d]
	// failed: 1
	// every URL reported once: true
}

// A coordinator on a CrawlStore answers only what is stored; after a crash,
// a coordinator made on the same store resumes the crawl.
func ExampleOpenCrawlStore() {
	dir, err := os.MkdirTemp("", "crawl")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, _ := crawler.OpenCrawlStore(dir)
	coord, _ := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: "http://example.org/", Store: store})
	var lease crawler.LeaseReply
	coord.Lease(crawler.LeaseArgs{Worker: "w1"}, &lease)
	var rep crawler.ReportReply
	coord.Report(crawler.ReportArgs{TaskID: lease.Task.ID, URL: lease.Task.URL, Attempt: 1,
		Links: []string{"http://example.org/a", "http://example.org/b"}}, &rep)
	coord.Lease(crawler.LeaseArgs{Worker: "w1"}, &lease) // w1 now holds /a
	store.Close()                                        // the coordinator dies here

	store, _ = crawler.OpenCrawlStore(dir)
	defer store.Close()
	coord, _ = crawler.NewCoordinator(crawler.CoordinatorConfig{Store: store}) // start URLs from the store
	st := coord.Stats()
	fmt.Printf("resumed: %d done, %d queued, %d leased, restart %d\n", st.Pages, st.Queued, st.Leased, st.Restarts)
	var again crawler.LeaseReply
	coord.Lease(crawler.LeaseArgs{Worker: "w1"}, &again)
	fmt.Println("w1 still holds", again.Task.URL, "as task", again.Task.ID == lease.Task.ID)
	// Output:
	// resumed: 1 done, 1 queued, 1 leased, restart 1
	// w1 still holds http://example.org/a as task true
}

// Each host gets fetch slots: with HostLimit 2, a host no worker has
// reported on gets one request at a time (its robots.txt is read first),
// then two; a Retry-After a worker reports keeps every worker off the host.
func ExampleScheduler_Pace() {
	s, _ := crawler.NewSchedulerURLs([]string{"http://h/1", "http://h/2", "http://h/3"},
		crawler.SchedulerConfig{LeaseTimeout: time.Minute, HostLimit: 2})
	t0 := time.Unix(0, 0)
	first, _ := s.Lease("w1", t0)
	_, ok := s.Lease("w2", t0)
	fmt.Println("second lease before any report:", ok)

	s.Pace("h", crawler.HostPace{Wait: 5 * time.Second}, t0) // a 503 with Retry-After: 5
	s.Report(first.ID, nil, t0)
	_, ok = s.Lease("w2", t0.Add(time.Second))
	fmt.Println("lease during Retry-After:", ok)
	next, _ := s.NextEvent(t0.Add(time.Second))
	fmt.Println("host free again at", next.Sub(t0))
	a, _ := s.Lease("w2", next)
	b, _ := s.Lease("w3", next)
	fmt.Println("then two at once:", a.URL, b.URL)
	// Output:
	// second lease before any report: false
	// lease during Retry-After: false
	// host free again at 5s
	// then two at once: http://h/2 http://h/3
}

// Every worker process needs its own name, whatever label it is given.
func ExampleNewWorkerName() {
	a, b := crawler.NewWorkerName("crawler"), crawler.NewWorkerName("crawler")
	fmt.Println(strings.HasPrefix(a, "crawler-"), a != b)
	// Output: true true
}

// A worker that stops before it reports (it was interrupted) gives its
// lease back, so the next worker gets the URL at once instead of after
// the lease time.
func ExampleCoordinator_Release() {
	coord, _ := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: "http://example.org/", LeaseTimeout: time.Hour})
	var lease crawler.LeaseReply
	coord.Lease(crawler.LeaseArgs{Worker: "w1"}, &lease)
	var rel crawler.ReleaseReply
	coord.Release(crawler.LeaseArgs{Worker: "w1"}, &rel)
	fmt.Println("released:", rel.Released)
	var next crawler.LeaseReply
	coord.Lease(crawler.LeaseArgs{Worker: "w2"}, &next)
	fmt.Println("w2 leases", next.Task.URL)
	// Output:
	// released: true
	// w2 leases http://example.org/
}

// A robots.txt that fails for a transient reason (here a 503) fails the
// URL with ErrRobotsUnavailable, which a cluster worker reports for a
// retry; the next Fetch of the host reads robots.txt again.
func ExampleErrRobotsUnavailable() {
	robotsDown := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" && robotsDown {
			robotsDown = false
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<p>hello</p>")
	}))
	defer srv.Close()
	hf, _ := crawler.NewHTTPFetcher(nil)
	defer hf.Close()
	cfg := crawler.DefaultConfig()
	cfg.MaxRetries = 0 // as a cluster worker: the coordinator retries
	f, _ := crawler.Polite(hf, cfg)

	_, err := f.Fetch(context.Background(), srv.URL+"/")
	fmt.Println("first:", errors.Is(err, crawler.ErrRobotsUnavailable))
	_, err = f.Fetch(context.Background(), srv.URL+"/")
	fmt.Println("again:", err)
	// Output:
	// first: true
	// again: <nil>
}
