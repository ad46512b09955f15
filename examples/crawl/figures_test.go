package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/crawler"
)

// TestClusterFigures measures the figures of BENCHMARKS.md's crawler
// cluster section: pages/s of the in-process distributed crawl against a
// coordinator process with 1, 2 and 4 worker processes on a three-host site
// whose pages take 20 ms, and the time a coordinator takes to resume after a
// SIGKILL. It only runs with SEMRPC_CRAWL_FIGURES=1 (it takes a minute):
//
//	SEMRPC_CRAWL_FIGURES=1 go test -run TestClusterFigures -v ./examples/crawl
func TestClusterFigures(t *testing.T) {
	if os.Getenv("SEMRPC_CRAWL_FIGURES") != "1" {
		t.Skip("set SEMRPC_CRAWL_FIGURES=1 to measure")
	}
	const (
		hosts, perHost = 3, 200
		latency        = 20 * time.Millisecond
		hostLimit      = 4
		fetchers       = 4 // per worker process
	)
	site := newClusterSite(t, hosts, perHost, 7, latency)
	start := site.url(pageID{0, pagePath(0)})
	var allowed []string
	for _, srv := range site.servers {
		allowed = append(allowed, srv.URL)
	}
	pages := len(site.reachable())

	for _, workers := range []int{fetchers, 4 * fetchers} {
		site.reset()
		hf, err := crawler.NewHTTPFetcher(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := crawler.DefaultConfig()
		cfg.AllowedHosts, cfg.MaxInFlightPerHost = allowed, hostLimit
		polite, err := crawler.Polite(hf, cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := crawler.DistributedCrawl(context.Background(), crawler.DistributedConfig{
			StartURL: start, Fetcher: polite, Workers: workers})
		hf.Close()
		if err != nil || res.Check != nil || res.Coordinator.Pages != pages {
			t.Fatalf("in-process: %v %v, %d pages of %d", err, res.Check, res.Coordinator.Pages, pages)
		}
		t.Logf("FIGURE in-process DistributedCrawl, %2d workers: %d pages in %v: %.0f pages/s",
			workers, pages, res.Elapsed.Round(time.Millisecond), res.PagesPerSecond())
	}

	for _, durable := range []bool{false, true} {
		for _, procs := range []int{1, 2, 4} {
			site.reset()
			sum, wall := runFigureCluster(t, site, start, allowed, procs, fetchers, hostLimit, durable, 0)
			if !sum.CheckOK || sum.Pages != pages {
				t.Fatalf("cluster: %s, %d pages of %d", sum.Check, sum.Pages, pages)
			}
			t.Logf("FIGURE coordinator (durable %v) + %d worker processes x %d: %d pages in %.3fs: %.0f pages/s (wall %v with process start)",
				durable, procs, fetchers, pages, sum.ElapsedSeconds, sum.PagesPerSecond, wall.Round(time.Millisecond))
		}
	}

	site.reset()
	runFigureCluster(t, site, start, allowed, 2, fetchers, hostLimit, true, pages/2)
}

func (s *clusterSite) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.hits)
	clear(s.served)
	clear(s.failedOnce)
	s.totalServed = 0
	for i := range s.maxInFlight {
		s.maxInFlight[i] = 0
	}
}

// runFigureCluster crawls site with a coordinator and procs worker
// processes; if killAt > 0 it SIGKILLs the coordinator once killAt pages
// were served, starts it again on the same -data and logs how long it took
// to resume.
func runFigureCluster(t *testing.T, site *clusterSite, start string, allowed []string, procs, fetchers, hostLimit int,
	durable bool, killAt int) (clusterSummary, time.Duration) {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"coordinator", "-listen", addr, "-url", start, "-hosts", strings.Join(allowed, ","),
		"-json", "-max-in-flight", fmt.Sprint(hostLimit), "-progress", "0", "-linger", "10s"}
	if durable {
		args = append(args, "-data", filepath.Join(t.TempDir(), "data"))
	}
	begin := time.Now()
	coord := startCrawl(t, "coordinator", args...)
	coord.waitLine(t, "listening on", 30*time.Second)
	var workers []*proc
	for i := range procs {
		workers = append(workers, startCrawl(t, fmt.Sprintf("worker%d", i), "worker", "-coordinator", addr,
			"-workers", fmt.Sprint(fetchers)))
	}
	if killAt > 0 {
		<-site.servedAtLeast(killAt)
		coord.kill(t)
		killed := time.Now()
		next := site.servedAtLeast(killAt + 1 + hostLimit*3) // past the requests in flight at the kill
		restarted := time.Now()
		coord = startCrawl(t, "coordinator-2", args...)
		coord.waitLine(t, "resumed from", 30*time.Second)
		listening := time.Since(restarted)
		<-next
		t.Logf("FIGURE resume after SIGKILL at %d pages: listening again %v after the restart; pages served again %v after the kill",
			killAt, listening.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	}
	if err := coord.wait(t, 5*time.Minute); err != nil {
		t.Fatalf("coordinator: %v\n%s", err, coord.stdout.String())
	}
	wall := time.Since(begin)
	for _, w := range workers {
		if err := w.wait(t, time.Minute); err != nil {
			t.Errorf("%s: %v", w.name, err)
		}
	}
	var sum clusterSummary
	if err := json.Unmarshal(coord.stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, coord.stdout.String())
	}
	site.mu.Lock()
	twice := 0
	for _, n := range site.served {
		if n > 1 {
			twice++
		}
	}
	site.mu.Unlock()
	if twice > 0 {
		t.Errorf("%d pages served more than once", twice)
	}
	return sum, wall
}
