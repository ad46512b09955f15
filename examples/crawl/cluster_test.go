package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/internal/testnet"
	"github.com/semrpc/semrpc/rpc"
)

// The multi-process tests run this test binary as the crawl program: with
// runAsCrawlEnv set, TestMain runs main instead of the tests.
const runAsCrawlEnv = "SEMRPC_RUN_AS_CRAWL"

// clusterSite is three web hosts on loopback ports whose pages link to each
// other's, for crawls by several processes. It counts what each host serves
// and the most requests it ever had in flight at once.
type clusterSite struct {
	t       *testing.T
	latency time.Duration
	servers []*httptest.Server
	links   map[pageID][]pageID // outgoing links of each page
	flaky   map[pageID]bool     // answers 503 to its first request

	mu          sync.Mutex // protects following
	hits        map[pageID]int
	served      map[pageID]int // 2xx answers
	failedOnce  map[pageID]bool
	inFlight    []int
	maxInFlight []int
	totalServed int
	waiters     []servedWaiter
}

type pageID struct {
	host int
	path string
}

type servedWaiter struct {
	n  int
	ch chan struct{}
}

const siteMissingPath = "/missing.html"

func privatePath(i int) string { return fmt.Sprintf("/private/x%d.html", i) }
func orphanPath(i int) string  { return fmt.Sprintf("/orphan/o%d.html", i) }
func pagePath(i int) string    { return fmt.Sprintf("/p/%d.html", i) }

func newClusterSite(t *testing.T, hosts, pagesPerHost int, seed int64, latency time.Duration) *clusterSite {
	s := &clusterSite{t: t, latency: latency, links: map[pageID][]pageID{}, flaky: map[pageID]bool{},
		hits: map[pageID]int{}, served: map[pageID]int{}, failedOnce: map[pageID]bool{},
		inFlight: make([]int, hosts), maxInFlight: make([]int, hosts)}
	rng := rand.New(rand.NewSource(seed))
	var all []pageID
	for h := range hosts {
		for i := range pagesPerHost {
			all = append(all, pageID{h, pagePath(i)})
		}
	}
	rng.Shuffle(len(all)-1, func(i, j int) { all[i+1], all[j+1] = all[j+1], all[i+1] }) // host 0's /p/0 stays first
	for i := 1; i < len(all); i++ {                                                     // a random tree: every page reachable
		from := all[rng.Intn(i)]
		s.links[from] = append(s.links[from], all[i])
	}
	for _, p := range all {
		for range rng.Intn(3) {
			s.links[p] = append(s.links[p], all[rng.Intn(len(all))])
		}
		if rng.Intn(12) == 0 {
			s.flaky[p] = true
		}
	}
	for h := range hosts {
		from := all[rng.Intn(len(all))]
		s.links[from] = append(s.links[from], pageID{h, privatePath(h)})
		s.links[pageID{h, privatePath(h)}] = []pageID{{h, orphanPath(h)}}
	}
	s.links[all[0]] = append(s.links[all[0]], pageID{1 % hosts, siteMissingPath})
	for h := range hosts {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(h, w, r) }))
		s.servers = append(s.servers, srv)
	}
	t.Cleanup(func() {
		for _, srv := range s.servers {
			srv.Close()
		}
	})
	return s
}

func (s *clusterSite) url(p pageID) string { return s.servers[p.host].URL + p.path }

// reachable returns every page a polite crawl from /p/0 of host 0 must fetch.
func (s *clusterSite) reachable() map[pageID]bool {
	start := pageID{0, pagePath(0)}
	seen := map[pageID]bool{start: true}
	queue := []pageID{start}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, l := range s.links[p] {
			if !seen[l] && strings.HasPrefix(l.path, "/p/") {
				seen[l] = true
				queue = append(queue, l)
			}
		}
	}
	return seen
}

func (s *clusterSite) serve(host int, w http.ResponseWriter, r *http.Request) {
	p := pageID{host, r.URL.Path}
	s.mu.Lock()
	s.hits[p]++
	s.inFlight[host]++
	s.maxInFlight[host] = max(s.maxInFlight[host], s.inFlight[host])
	fail := s.flaky[p] && !s.failedOnce[p]
	if fail {
		s.failedOnce[p] = true
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight[host]--
		s.mu.Unlock()
	}()
	if r.URL.Path == "/robots.txt" {
		fmt.Fprint(w, "User-agent: *\nDisallow: /private/\n")
		return
	}
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	links, known := s.links[p]
	switch {
	case fail:
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	case !known && !strings.HasPrefix(p.path, "/p/") && !strings.HasPrefix(p.path, "/orphan/"):
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<!DOCTYPE html><html><body><ul>\n")
	for _, l := range links {
		fmt.Fprintf(&b, "<li><a href=%q>x</a></li>\n", s.url(l))
	}
	b.WriteString("</ul></body></html>\n")
	io.WriteString(w, b.String())
	s.mu.Lock()
	s.served[p]++
	s.totalServed++
	for i := 0; i < len(s.waiters); {
		if s.totalServed >= s.waiters[i].n {
			close(s.waiters[i].ch)
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			continue
		}
		i++
	}
	s.mu.Unlock()
}

// servedAtLeast returns a channel closed once n pages were served.
func (s *clusterSite) servedAtLeast(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.totalServed >= n {
		close(ch)
		return ch
	}
	s.waiters = append(s.waiters, servedWaiter{n, ch})
	return ch
}

// proc is a crawl program running in its own process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string // stderr, line by line
	done   chan struct{}
	err    error // after done
}

func startCrawl(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, lines: make(chan string, 1000), done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), runAsCrawlEnv+"=1")
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("%s: %s", name, sc.Text())
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitLine waits for a stderr line containing s.
func (p *proc) waitLine(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line := <-p.lines:
			if strings.Contains(line, s) {
				return
			}
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q; stdout:\n%s", p.name, p.err, s, p.stdout.String())
		case <-deadline:
			t.Fatalf("%s did not print %q in %v", p.name, s, timeout)
		}
	}
}

func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v; stdout:\n%s", p.name, timeout, p.stdout.String())
		return nil
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// freeAddr returns a loopback address where nothing listens, which no other
// test's listener takes meanwhile (see testnet).
func freeAddr(t *testing.T) string { return testnet.FreeAddr(t) }

// TestClusterSurvivesWorkerAndCoordinatorKills is issue 12's multi-process
// test: a coordinator and three worker processes crawl three hosts on
// loopback that link to each other; a worker and then the coordinator are
// SIGKILLed mid-crawl, and the coordinator is started again on the same
// -data. Every reachable page is fetched, at most twice and then only pages
// the killed worker held; nothing disallowed or unlinked is requested; no
// host ever has more requests in flight than -max-in-flight, counted over
// all workers; the summary's check passes and the surviving workers exit 0.
func TestClusterSurvivesWorkerAndCoordinatorKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const (
		hostLimit     = 2
		workerFetches = 2
	)
	site := newClusterSite(t, 3, 50, 12, 10*time.Millisecond)
	reachable := site.reachable()
	data := filepath.Join(t.TempDir(), "crawl-data") // the coordinator creates it
	addr := freeAddr(t)
	hosts := strings.TrimPrefix(site.servers[1].URL, "http://") + "," + site.servers[2].URL
	coordArgs := []string{"coordinator", "-listen", addr, "-url", site.url(pageID{0, pagePath(0)}),
		"-hosts", hosts, "-data", data, "-json", "-lease", "5s", "-max-in-flight", fmt.Sprint(hostLimit),
		"-retry-delay", "20ms", "-progress", "0", "-linger", "10s"}
	coord := startCrawl(t, "coordinator", coordArgs...)
	coord.waitLine(t, "listening on", 30*time.Second)

	var workers []*proc
	for i := range 3 {
		workers = append(workers, startCrawl(t, fmt.Sprintf("worker%d", i), "worker", "-coordinator", addr,
			"-workers", fmt.Sprint(workerFetches), "-name", "same-label", "-patience", "30s"))
	}

	total := len(reachable)
	select {
	case <-site.servedAtLeast(total / 4):
	case <-coord.done:
		t.Fatalf("coordinator exited early: %v\n%s", coord.err, coord.stdout.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the crawl did not start")
	}
	workers[0].kill(t)
	select {
	case <-site.servedAtLeast(total / 2):
	case <-coord.done:
		t.Fatalf("coordinator exited early: %v\n%s", coord.err, coord.stdout.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the crawl stalled after the worker was killed")
	}
	coord.kill(t)
	coord = startCrawl(t, "coordinator-2", coordArgs...)
	coord.waitLine(t, "resumed from", 30*time.Second)

	if err := coord.wait(t, 90*time.Second); err != nil {
		t.Fatalf("coordinator: %v\n%s", err, coord.stdout.String())
	}
	var sum clusterSummary
	if err := json.Unmarshal(coord.stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, coord.stdout.String())
	}
	for _, w := range workers[1:] {
		if err := w.wait(t, 30*time.Second); err != nil {
			t.Errorf("%s: %v\n%s", w.name, err, w.stdout.String())
		} else if !strings.Contains(w.stdout.String(), "the crawl is over") {
			t.Errorf("%s exited 0 without being told the crawl is over:\n%s", w.name, w.stdout.String())
		}
	}

	if !sum.CheckOK {
		t.Errorf("summary check: %s", sum.Check)
	}
	if sum.Restarts != 1 {
		t.Errorf("summary: %d restarts, want 1", sum.Restarts)
	}
	// Three worker processes took part, the killed one included, though
	// the restarted coordinator met only two.
	if sum.Workers != 3 || sum.Fetchers != 3*workerFetches {
		t.Errorf("summary: %d worker processes with %d fetchers; want 3 with %d", sum.Workers, sum.Fetchers, 3*workerFetches)
	}
	// Failed: the 404, and any disallowed page a worker was leased before
	// its host's robots.txt was read (it is never requested).
	if sum.Pages != len(reachable) || sum.Failed != len(sum.Failures) {
		t.Errorf("summary: %d pages, %d failed (%v); want %d pages", sum.Pages, sum.Failed, sum.Failures, len(reachable))
	}
	missing := false
	for _, f := range sum.Failures {
		switch {
		case strings.HasSuffix(f.URL, siteMissingPath) && strings.Contains(f.Reason, "404"):
			missing = true
		case strings.Contains(f.URL, "/private/") && strings.Contains(f.Reason, "disallowed"):
		default:
			t.Errorf("unexpected failure %s: %s", f.URL, f.Reason)
		}
	}
	if !missing {
		t.Errorf("failures %v do not list %s", sum.Failures, siteMissingPath)
	}

	site.mu.Lock()
	defer site.mu.Unlock()
	twice := 0
	for p := range reachable {
		switch n := site.served[p]; {
		case n == 0:
			t.Errorf("%s never fetched", site.url(p))
		case n == 2:
			twice++
		case n > 2:
			t.Errorf("%s fetched %d times", site.url(p), n)
		}
	}
	// Only the pages the killed worker was fetching may be fetched again
	// (the coordinator's restart loses nothing and leases nothing again).
	if twice > workerFetches {
		t.Errorf("%d pages fetched twice; the killed worker held at most %d", twice, workerFetches)
	}
	for h := range site.servers {
		for _, path := range []string{privatePath(h), orphanPath(h)} {
			if n := site.hits[pageID{h, path}]; n > 0 {
				t.Errorf("%s requested %d times", site.url(pageID{h, path}), n)
			}
		}
		if site.maxInFlight[h] > hostLimit {
			t.Errorf("host %d had %d requests in flight; the cluster-wide limit is %d", h, site.maxInFlight[h], hostLimit)
		}
		if site.maxInFlight[h] == 0 {
			t.Errorf("host %d never requested", h)
		}
	}
	// And the limit is used: a host with no Crawl-delay is not held to one
	// request at a time.
	if slices.Max(site.maxInFlight) != hostLimit {
		t.Errorf("in flight at most %v per host: no host ever reached the limit %d", site.maxInFlight, hostLimit)
	}
	t.Logf("%d pages, %d fetched twice, in flight at most %v per host, %d leases reassigned, %d retried",
		len(reachable), twice, site.maxInFlight, sum.LeasesReassigned, sum.Retried)
}

// TestClusterCLI runs the subcommands as a user would, in their own
// processes: bad flags exit 2, a crawl without -data says it cannot resume,
// and a crawl where nothing can be fetched exits 1 with the reason.
func TestClusterCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"coordinator help says what -data is for", []string{"coordinator", "-h"}, 0, "cannot resume"},
		{"worker help", []string{"worker", "-h"}, 0, "-patience"},
		{"coordinator without a URL", []string{"coordinator"}, 2, "-url"},
		{"coordinator bad listen", []string{"coordinator", "-url", "http://x/", "-listen", "nope"}, 2, "-listen"},
		{"coordinator bad URL", []string{"coordinator", "-url", "ftp://x/"}, 2, "-url"},
		{"worker without a coordinator", []string{"worker"}, 2, "-coordinator"},
		{"worker bad count", []string{"worker", "-coordinator", "127.0.0.1:1", "-workers", "0"}, 2, "-workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(os.Environ(), runAsCrawlEnv+"=1")
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("exit %d, want %d; output (want %q):\n%s", code, tt.wantCode, tt.wantOut, out)
			}
		})
	}

	t.Run("nothing fetched exits 1 with the reason: host unreachable", func(t *testing.T) {
		dead := "http://" + freeAddr(t) + "/" // nothing listens there
		addr := freeAddr(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		coord := exec.CommandContext(ctx, os.Args[0], "coordinator", "-listen", addr, "-url", dead,
			"-retries", "1", "-retry-delay", "1ms", "-progress", "0")
		coord.Env = append(os.Environ(), runAsCrawlEnv+"=1")
		var out bytes.Buffer
		coord.Stdout, coord.Stderr = &out, &out
		if err := coord.Start(); err != nil {
			t.Fatal(err)
		}
		worker := startCrawl(t, "worker", "worker", "-coordinator", addr, "-workers", "1")
		err := coord.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
			!strings.Contains(out.String(), "nothing could be fetched") || !strings.Contains(out.String(), dead) {
			t.Errorf("coordinator: %v\n%s", err, out.String())
		}
		// The reason is the host's, not robots.txt's.
		if !strings.Contains(out.String(), "host unreachable") || strings.Contains(out.String(), "disallowed by robots.txt") {
			t.Errorf("coordinator's reason does not say the host is unreachable:\n%s", out.String())
		}
		if err := worker.wait(t, 30*time.Second); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

// A coordinator started on the -data of a finished crawl said it resumed
// it, counted a restart each time, and its summary lost the crawl's hosts.
// It now says the crawl is already complete, prints the stored summary
// (hosts included) and exits 0. The coordinator that finished the crawl
// here never made its report, so the first run is one restart (as after a
// coordinator killed while it lingered); once a report is made, running
// again changes nothing.
func TestCoordinatorOnAFinishedCrawlPrintsItsSummaryUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	data := t.TempDir()
	st, err := crawler.OpenCrawlStore(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: "http://a.test/",
		Hosts: []string{"a.test", "b.test"}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var lr crawler.LeaseReply
	if err := c.Lease(crawler.LeaseArgs{Worker: "w"}, &lr); err != nil || lr.Task.ID == 0 {
		t.Fatalf("lease: %+v, %v", lr, err)
	}
	var rr crawler.ReportReply
	if err := c.Report(crawler.ReportArgs{TaskID: lr.Task.ID, URL: lr.Task.URL, Attempt: 1}, &rr); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for run := range 2 {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "coordinator", "-listen", "127.0.0.1:0", "-data", data, "-json", "-progress", "0")
		cmd.Env = append(os.Environ(), runAsCrawlEnv+"=1")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("run %d: %v\n%s%s", run, err, stdout.String(), stderr.String())
		}
		var sum clusterSummary
		if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, stdout.String())
		}
		if !sum.CheckOK || sum.Pages != 1 || sum.Restarts != 1 || !slices.Equal(sum.Hosts, []string{"a.test", "b.test"}) {
			t.Errorf("run %d: summary %+v; want 1 page, 1 restart, hosts a.test b.test, check ok", run, sum)
		}
		if !strings.Contains(stderr.String(), "already complete") {
			t.Errorf("run %d: stderr does not say the crawl is complete:\n%s", run, stderr.String())
		}
	}
}

// A worker process interrupted (SIGINT) while it fetched left its leases
// to expire (-lease, 30 s by default), so its URLs waited that long, and it
// said only "context canceled". It now gives its leases back: the URL is
// leased to the next worker at once, and it says so.
func TestInterruptedWorkerGivesItsLeasesBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	fetching := make(chan struct{}, 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
			return
		}
		select {
		case fetching <- struct{}{}:
		default:
		}
		<-r.Context().Done() // never answers: the worker is interrupted first
	}))
	defer site.Close()
	coord, err := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: site.URL + "/", LeaseTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		core.Serve(l)
	}()
	defer func() {
		core.Close()
		<-served
	}()

	w := startCrawl(t, "worker", "worker", "-coordinator", l.Addr().String(), "-workers", "2")
	select {
	case <-fetching:
	case <-w.done:
		t.Fatalf("worker exited: %v\n%s", w.err, w.stdout.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the worker never fetched the start URL")
	}
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	w.waitLine(t, "1 leases given back", 30*time.Second)
	if err := w.wait(t, 30*time.Second); err == nil {
		t.Error("an interrupted worker exited 0")
	}
	var lr crawler.LeaseReply
	if err := coord.Lease(crawler.LeaseArgs{Worker: "next"}, &lr); err != nil || lr.Task.URL != site.URL+"/" {
		t.Errorf("next worker's lease: %+v, %v; want the start URL at once", lr.Task, err)
	}
	if st := coord.Stats(); st.Released != 1 || st.Reassigned != 0 {
		t.Errorf("%d leases released, %d reassigned; want 1 and 0", st.Released, st.Reassigned)
	}
}

// A coordinator that could not listen (its port taken) had already resumed
// the crawl on its -data and counted a restart. It now listens first and
// leaves the store as it was.
func TestCoordinatorThatCannotListenLeavesItsStoreUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	data := t.TempDir()
	st, err := crawler.OpenCrawlStore(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: "http://a.test/", Store: st}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cmd := exec.Command(os.Args[0], "coordinator", "-listen", taken.Addr().String(), "-data", data, "-progress", "0")
	cmd.Env = append(os.Environ(), runAsCrawlEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Errorf("coordinator on a taken port: %v\n%s", err, out)
	}
	st, err = crawler.OpenCrawlStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := crawler.NewCoordinator(crawler.CoordinatorConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Restarts; got != 1 {
		t.Errorf("%d restarts after the failed start and this one, want 1", got)
	}
}

// A SIGKILLed worker process held its leases, and so its hosts' slots,
// until they expired (30 s by default). Its heartbeats now stop with it,
// and the coordinator frees its leases once it has been silent for the
// process timeout: with leases of an hour, the next worker gets the URL.
func TestKilledWorkerProcessFreesItsLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	fetching := make(chan struct{}, 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
			return
		}
		select {
		case fetching <- struct{}{}:
		default:
		}
		<-r.Context().Done() // never answers: the worker is killed first
	}))
	defer site.Close()
	coord, err := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: site.URL + "/", LeaseTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		core.Serve(l)
	}()
	defer func() {
		core.Close()
		<-served
	}()

	w := startCrawl(t, "worker", "worker", "-coordinator", l.Addr().String(), "-workers", "2")
	select {
	case <-fetching:
	case <-w.done:
		t.Fatalf("worker exited: %v\n%s", w.err, w.stdout.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the worker never fetched the start URL")
	}
	w.kill(t)

	// The next worker's Lease calls find the silent process and free its
	// lease; until then they get nothing (the URL is leased for an hour).
	deadline := time.Now().Add(60 * time.Second)
	for {
		var lr crawler.LeaseReply
		if err := coord.Lease(crawler.LeaseArgs{Worker: "next"}, &lr); err != nil {
			t.Fatal(err)
		}
		if lr.Task.URL == site.URL+"/" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed worker's lease was never freed: %+v", coord.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := coord.Stats(); st.ProcessesLost != 1 || st.LostLeases != 1 || st.Reassigned != 0 {
		t.Errorf("%d processes lost, %d leases freed, %d reassigned; want 1, 1 and 0", st.ProcessesLost, st.LostLeases, st.Reassigned)
	}
	if procs, fetchers := coord.Processes(); procs != 1 || fetchers != 2 {
		t.Errorf("coordinator counts %d worker processes with %d fetchers; want 1 with 2", procs, fetchers)
	}
}

func TestSummaryPlurals(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 worker processes"}, {1, "1 worker process"}, {3, "3 worker processes"}} {
		if got := plural(c.n, "worker process", "worker processes"); got != c.want {
			t.Errorf("plural(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
