package crawler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/semrpc/semrpc/crawler/labnet"
	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// hostLog is a fake web of one host per "http://hN" that records, in the
// bubble's virtual time, when each request to each host started and ended.
type fakeRequest struct {
	url        string
	start, end time.Time
	status     int
}

type hostLog struct {
	latency    time.Duration
	web        map[string][]string
	retryAfter map[string]time.Duration // first request answers 503 with this Retry-After

	mu       sync.Mutex // protects following
	requests []fakeRequest
	starts   map[string][]time.Time
	ends     map[string][]time.Time
	inFlight map[string]int
	maxIn    map[string]int
	fetches  map[string]int
	answered map[string]bool
}

// crawlDelayWeb is a hostLog whose hosts serve a robots.txt with a
// Crawl-delay; robots.txt requests are logged like the others.
type crawlDelayWeb struct {
	*hostLog
	crawlDelay string
}

func (r crawlDelayWeb) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	r.Fetch(ctx, robotsURL)
	return 200, []byte("User-agent: *\nCrawl-delay: " + r.crawlDelay + "\n"), nil
}

func (h *hostLog) Fetch(ctx context.Context, u string) ([]string, error) {
	host, _ := HostKey(u)
	h.mu.Lock()
	h.starts[host] = append(h.starts[host], time.Now())
	h.fetches[u]++
	h.inFlight[host]++
	h.maxIn[host] = max(h.maxIn[host], h.inFlight[host])
	ra, flaky := h.retryAfter[u]
	fail := flaky && !h.answered[u]
	h.answered[u] = true
	h.mu.Unlock()
	time.Sleep(h.latency)
	h.mu.Lock()
	h.inFlight[host]--
	h.ends[host] = append(h.ends[host], time.Now())
	r := fakeRequest{url: u, start: h.starts[host][len(h.starts[host])-1], end: time.Now(), status: 200}
	if fail {
		r.status = 503
	}
	h.requests = append(h.requests, r)
	h.mu.Unlock()
	if fail {
		return nil, &HTTPError{URL: u, StatusCode: 503, RetryAfter: ra}
	}
	return h.web[u], nil
}

// runClusterInBubble runs a Coordinator over labrpc and one worker per
// PoliteFetcher (as if each were its own process), until the crawl is over.
func runClusterInBubble(t *testing.T, cfg CoordinatorConfig, web Fetcher, workers int) CoordinatorStats {
	t.Helper()
	coord, err := NewCoordinator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		t.Fatal(err)
	}
	network := labrpc.MakeNetworkSeed(1)
	network.AddServer("coordinator", labrpc.MakeServerWith(core))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		name := fmt.Sprintf("w%d", i)
		end := network.MakeEnd(name)
		network.Connect(name, "coordinator")
		network.Enable(name, true)
		client := rpc.NewClient(end, rpc.WithSemantics(semantics.AtLeastOnce()))
		pcfg := DefaultConfig()
		_, robots := web.(RobotsFetcher)
		pcfg.IgnoreRobots, pcfg.AllowOtherHosts, pcfg.MaxRetries = !robots, true, 0
		polite, err := Polite(web, pcfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.Close()
			_, errs[i] = RunWorkerWith(context.Background(), client, polite, WorkerConfig{Name: name, RetryTransient: true})
		}()
	}
	wg.Wait()
	network.Cleanup()
	core.Close()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	if err := coord.Check(); err != nil {
		t.Error(err)
	}
	return coord.Stats()
}

func newHostLog(latency time.Duration) *hostLog {
	return &hostLog{latency: latency, web: map[string][]string{}, retryAfter: map[string]time.Duration{},
		starts: map[string][]time.Time{}, ends: map[string][]time.Time{}, inFlight: map[string]int{},
		maxIn: map[string]int{}, fetches: map[string]int{}, answered: map[string]bool{}}
}

// Issue 12: a 300 ms per-host delay with 1 s leases re-fetched 8 of 34
// URLs, because a lease's time ran while its URL waited for the host. With
// the coordinator pacing each host, no lease expires, every URL is fetched
// once, and request starts on the host are at least the delay apart over
// all four workers.
func TestClusterHostDelayHoldsAcrossWorkersWithoutExpiringLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := newHostLog(20 * time.Millisecond)
		var links []string
		for i := range 33 {
			links = append(links, fmt.Sprintf("http://h1/p%d", i))
		}
		web.web["http://h1/"] = links
		st := runClusterInBubble(t, CoordinatorConfig{StartURL: "http://h1/", LeaseTimeout: time.Second,
			HostLimit: 4, HostDelay: 300 * time.Millisecond}, web, 4)
		if st.Pages != 34 || st.Reassigned != 0 {
			t.Errorf("%d pages, %d leases reassigned; want 34 and 0", st.Pages, st.Reassigned)
		}
		for u, n := range web.fetches {
			if n != 1 {
				t.Errorf("%s fetched %d times", u, n)
			}
		}
		starts := web.starts["h1"]
		for i := 1; i < len(starts); i++ {
			if gap := starts[i].Sub(starts[i-1]); gap < 300*time.Millisecond {
				t.Errorf("requests %d and %d started %v apart; the host delay is 300ms", i-1, i, gap)
			}
		}
	})
}

// A 503 with Retry-After from one host keeps every worker off that host
// until it has passed, and the URL is fetched again after it; other hosts
// are crawled meanwhile.
func TestClusterRetryAfterHoldsForEveryWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := newHostLog(10 * time.Millisecond)
		var links []string
		for h := 1; h <= 2; h++ {
			for i := range 10 {
				links = append(links, fmt.Sprintf("http://h%d/p%d", h, i))
			}
		}
		web.web["http://h1/"] = links
		web.retryAfter["http://h1/p3"] = 5 * time.Second
		st := runClusterInBubble(t, CoordinatorConfig{StartURL: "http://h1/", LeaseTimeout: 10 * time.Second,
			HostLimit: 3, MaxRetries: 2, RetryDelay: 10 * time.Millisecond}, web, 3)
		if st.Pages != 21 || st.Retried != 1 {
			t.Errorf("%d pages, %d retried; want 21 and 1", st.Pages, st.Retried)
		}
		if web.fetches["http://h1/p3"] != 2 {
			t.Errorf("the 503 page fetched %d times, want 2", web.fetches["http://h1/p3"])
		}
		web.mu.Lock()
		defer web.mu.Unlock()
		var answered time.Time
		for _, r := range web.requests {
			if r.status == 503 {
				answered = r.end
			}
		}
		if answered.IsZero() {
			t.Fatal("no 503 was answered")
		}
		after := 0
		for _, r := range web.requests {
			if hostOf(r.url) == "h1" && r.start.After(answered) {
				after++
				if r.start.Sub(answered) < 5*time.Second {
					t.Errorf("%s requested %v after the 503 that asked for 5s", r.url, r.start.Sub(answered))
				}
			}
		}
		if after == 0 {
			t.Error("no h1 request after the 503: the test shows nothing")
		}
		h2 := web.starts["h2"]
		if len(h2) != 10 {
			t.Errorf("h2 got %d requests, want 10", len(h2))
		}
	})
}

// A robots.txt Crawl-delay, which each worker process reads for itself,
// holds for the host over all workers: the coordinator learns it from the
// reports, and page requests to the host start at least that far apart
// whichever worker makes them; the host never has two requests in flight.
func TestClusterCrawlDelayFromRobotsHoldsAcrossWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := newHostLog(50 * time.Millisecond)
		var links []string
		for i := range 11 {
			links = append(links, fmt.Sprintf("http://h1/p%d", i))
		}
		web.web["http://h1/"] = links
		st := runClusterInBubble(t, CoordinatorConfig{StartURL: "http://h1/", LeaseTimeout: time.Minute, HostLimit: 4},
			crawlDelayWeb{web, "1"}, 3)
		if st.Pages != 12 {
			t.Errorf("%d pages, want 12", st.Pages)
		}
		web.mu.Lock()
		defer web.mu.Unlock()
		var pages []fakeRequest
		robots := 0
		for _, r := range web.requests {
			if strings.HasSuffix(r.url, "/robots.txt") {
				robots++
				continue
			}
			pages = append(pages, r)
		}
		if robots != 3 {
			t.Errorf("%d robots.txt requests, want one per worker", robots)
		}
		for i := 1; i < len(pages); i++ {
			if gap := pages[i].start.Sub(pages[i-1].start); gap < time.Second {
				t.Errorf("%s started %v after %s; Crawl-delay is 1s", pages[i].url, gap, pages[i-1].url)
			}
		}
		if web.maxIn["h1"] != 1 {
			t.Errorf("h1 had up to %d requests in flight, want 1", web.maxIn["h1"])
		}
	})
}

// Issue 12's numbers, in one process: a PoliteFetcher with a 300 ms delay,
// shared by 4 workers with 1 s leases, re-fetched 8 of 34 URLs. Its
// HostPacing reports let the coordinator pace the host, so no lease expires
// while its URL waits.
func TestDistributedCrawlPolitenessDelayDoesNotExpireLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := newHostLog(20 * time.Millisecond)
		var links []string
		for i := range 33 {
			links = append(links, fmt.Sprintf("http://h1/p%d", i))
		}
		web.web["http://h1/"] = links
		pcfg := DefaultConfig()
		pcfg.IgnoreRobots, pcfg.Delay = true, 300*time.Millisecond
		polite, err := Polite(web, pcfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := DistributedCrawl(context.Background(), DistributedConfig{StartURL: "http://h1/", Fetcher: polite,
			Workers: 4, Network: &labnet.Network{}, LeaseTimeout: time.Second})
		if err != nil || res.Check != nil {
			t.Fatal(err, res.Check)
		}
		if res.Coordinator.Pages != 34 || res.Coordinator.Reassigned != 0 || res.Workers.Fetches != 34 {
			t.Errorf("%d pages, %d leases reassigned, %d fetches; want 34, 0, 34",
				res.Coordinator.Pages, res.Coordinator.Reassigned, res.Workers.Fetches)
		}
	})
}

// flakyRobotsWeb is a hostLog whose hosts serve an empty robots.txt, except
// that the first failures[host] robots.txt requests of a host fail with a
// 503 (no Retry-After).
type flakyRobotsWeb struct {
	*hostLog
	robotsMu sync.Mutex
	failures map[string]int
	robots   map[string]int // robots.txt requests per host
}

func (r *flakyRobotsWeb) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	host, _ := HostKey(robotsURL)
	r.robotsMu.Lock()
	defer r.robotsMu.Unlock()
	r.robots[host]++
	if r.failures[host] > 0 {
		r.failures[host]--
		return 503, nil, nil
	}
	return 200, nil, nil
}

// The author's known gap: a cluster worker does not retry itself
// (MaxRetries 0, the coordinator retries), so a robots.txt that failed once
// made that worker refuse the host as disallowed for RobotsTTL (24 h), and
// its URLs failed for good. Now the failure is transient: the URL is
// reported for a retry, the next try reads robots.txt again, and every page
// is fetched.
func TestClusterTransientRobotsFailureIsRetriedNotDisallowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := &flakyRobotsWeb{hostLog: newHostLog(10 * time.Millisecond),
			failures: map[string]int{"h1": 2}, robots: map[string]int{}}
		var links []string
		for h := 1; h <= 2; h++ {
			for i := range 5 {
				links = append(links, fmt.Sprintf("http://h%d/p%d", h, i))
			}
		}
		web.web["http://h2/"] = links
		st := runClusterInBubble(t, CoordinatorConfig{StartURL: "http://h2/", LeaseTimeout: 10 * time.Second,
			HostLimit: 2, MaxRetries: 3, RetryDelay: 10 * time.Millisecond}, web, 2)
		if st.Pages != 11 || st.Failed != 0 {
			t.Errorf("%d pages, %d failed; want 11 and 0", st.Pages, st.Failed)
		}
		if st.Retried == 0 {
			t.Error("no URL retried: the robots.txt failures were not seen")
		}
		web.robotsMu.Lock()
		defer web.robotsMu.Unlock()
		if web.robots["h1"] < 3 {
			t.Errorf("h1's robots.txt requested %d times; want its 2 failures and a success", web.robots["h1"])
		}
		for i := range 5 {
			if u := fmt.Sprintf("http://h1/p%d", i); web.fetches[u] != 1 {
				t.Errorf("%s fetched %d times, want 1", u, web.fetches[u])
			}
		}
	})
}

// A PoliteFetcher that does not retry: a robots.txt 503 fails the URL with
// an error that says it is transient (ErrRobotsUnavailable, as well as
// ErrDisallowed), links to that host found on other pages are kept (not
// dropped as disallowed), and the host's next Fetch reads robots.txt again.
func TestPoliteTransientRobotsFailureIsNotCached(t *testing.T) {
	web := &flakyRobotsWeb{hostLog: newHostLog(0), failures: map[string]int{"h1": 1}, robots: map[string]int{}}
	web.web["http://h2/"] = []string{"http://h1/b"}
	cfg := DefaultConfig()
	cfg.MaxRetries, cfg.AllowOtherHosts = 0, true
	f, err := Polite(web, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = f.Fetch(ctx, "http://h1/a")
	if !errors.Is(err, ErrRobotsUnavailable) || !errors.Is(err, ErrDisallowed) {
		t.Fatalf("first fetch of h1: err = %v, want ErrRobotsUnavailable and ErrDisallowed", err)
	}
	if web.fetches["http://h1/a"] != 0 {
		t.Error("h1/a requested without robots.txt")
	}
	links, err := f.Fetch(ctx, "http://h2/")
	if err != nil || !slices.Equal(links, []string{"http://h1/b"}) {
		t.Errorf("h2/: links %v, err %v; want the link to h1/b kept", links, err)
	}
	if _, err := f.Fetch(ctx, "http://h1/a"); err != nil {
		t.Errorf("second fetch of h1/a: %v", err)
	}
	if web.robots["h1"] != 2 || web.fetches["http://h1/a"] != 1 {
		t.Errorf("h1's robots.txt requested %d times, h1/a %d times; want 2 and 1", web.robots["h1"], web.fetches["http://h1/a"])
	}
}
