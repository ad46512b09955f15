// Command crawl crawls a web site with one of semrpc's crawlers and prints
// what it did.
//
// With no arguments it serves a generated site of 3000 pages on loopback
// (crawler.NewSite: robots.txt rules, pages that fail once, pages nothing
// links to) and crawls it with the distributed crawler: a coordinator and 8
// workers that talk over a simulated labrpc network losing 3% of requests
// and 3% of replies, duplicating 1% of requests and delaying each up to
// 2ms. Workers lease pages
// under at-least-once semantics and report them under at-most-once
// semantics, so the summary's last line can check that every page was
// reported exactly once; the exit status is 1 if it was not.
//
// Usage:
//
//	crawl [flags]
//
//	-url URL      crawl a real site (same host only, robots.txt obeyed)
//	-mode M       serial, mutex, channel or distributed (default distributed)
//	-workers N    distributed workers, or fetches in flight (default 8)
//	-max-pages N  stop admitting URLs after N (default 10000)
//	-depth N      follow links at most N hops from the start (default no limit)
//	-net NET      distributed mode: labrpc or tcp (default labrpc)
//	-loss P       labrpc: probability of losing a request, and a reply (default 0.03)
//	-dup P        labrpc: probability of duplicating a request (default 0.01)
//	-delay D      labrpc: delay each request up to D (default 2ms)
//	-pages N      size of the built-in site (default 3000)
//	-seed S       seed of the built-in site and of the network's faults (default 1)
//	-json         print the summary as JSON
//
// Bad flags exit with status 2.
//
// Two subcommands run one crawl across processes (crawl coordinator -h and
// crawl worker -h say more):
//
//	crawl coordinator -listen ADDR -url URL [-url URL...] [-hosts H1,H2] [-data DIR] [-json]
//	crawl worker -coordinator ADDR [-workers N] [-name LABEL] [-patience D]
//
// The coordinator serves the crawl over TCP with semrpc (leases at-least-once,
// reports at-most-once), keeps each host within its politeness limits over
// all workers, and with -data keeps the crawl in a bbolt file, so that a
// coordinator killed and started again on the same directory resumes it.
// Workers fetch what they are leased, wait for a restarting coordinator, and
// exit 0 when it says the crawl is over. "crawl site" serves the built-in
// site on a port, to try them on loopback.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/crawler/labnet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runContext(ctx, os.Args[1:], os.Stdout)
	stop()
	var uerr *usageError
	switch {
	case err == nil:
	case errors.As(err, &uerr):
		help := "crawl -h"
		if len(os.Args) > 1 && (os.Args[1] == "coordinator" || os.Args[1] == "worker" || os.Args[1] == "site") {
			help = "crawl " + os.Args[1] + " -h"
		}
		fmt.Fprintf(os.Stderr, "crawl: %v\nRun '%s' for usage.\n", err, help)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "crawl: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// The networks of -net.
const (
	netLabrpc = "labrpc"
	netTCP    = "tcp"
)

// errCheckFailed is returned when the summary's check fails: exit status 1.
var errCheckFailed = errors.New("check failed: not every page was reported exactly once")

type options struct {
	url      string
	mode     string
	workers  int
	maxPages int
	depth    int
	network  string
	loss     float64
	dup      float64
	delay    time.Duration
	pages    int
	seed     int64
	json     bool
}

func parseFlags(args []string, stdout io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("crawl", flag.ContinueOnError)
	var errBuf strings.Builder
	fs.SetOutput(&errBuf)
	fs.StringVar(&o.url, "url", "", "crawl this http(s) `URL` instead of the built-in site (same host only)")
	fs.StringVar(&o.mode, "mode", "distributed", "crawler: serial, mutex, channel or distributed")
	fs.IntVar(&o.workers, "workers", 8, "distributed workers, or fetches in flight for mutex and channel")
	fs.IntVar(&o.maxPages, "max-pages", 10000, "admit at most `N` URLs to the crawl")
	fs.IntVar(&o.depth, "depth", 0, "follow links at most `N` hops from the start URL (0: no limit)")
	fs.StringVar(&o.network, "net", netLabrpc, "distributed mode: labrpc (simulated, lossy) or tcp (loopback)")
	fs.Float64Var(&o.loss, "loss", 0.03, "labrpc: probability `P` of losing a request, and of losing a reply")
	fs.Float64Var(&o.dup, "dup", 0.01, "labrpc: probability `P` of delivering a request twice")
	fs.DurationVar(&o.delay, "delay", 2*time.Millisecond, "labrpc: each request is delayed up to `D` (uniformly)")
	fs.IntVar(&o.pages, "pages", 3000, "pages of the built-in site")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the built-in site and of the network's faults")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: crawl [flags]\n       crawl coordinator -h\n       crawl worker -h\n       crawl site -h\n\n"+
				"Crawls the built-in site, or -url, and prints a summary. The subcommands\n"+
				"run a crawl across processes: a coordinator and worker processes over TCP.\n\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (flags only)", fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch o.mode {
	case "serial", "mutex", "channel", "distributed":
	default:
		return nil, usagef("-mode %q: want serial, mutex, channel or distributed", o.mode)
	}
	switch {
	case o.workers < 1:
		return nil, usagef("-workers %d: want at least 1", o.workers)
	case o.maxPages < 1:
		return nil, usagef("-max-pages %d: want at least 1", o.maxPages)
	case o.depth < 0:
		return nil, usagef("-depth %d: want 0 (no limit) or more", o.depth)
	case o.pages < 1:
		return nil, usagef("-pages %d: want at least 1", o.pages)
	case o.network != netLabrpc && o.network != netTCP:
		return nil, usagef("-net %q: want labrpc or tcp", o.network)
	case math.IsNaN(o.loss) || o.loss < 0 || o.loss >= 1:
		return nil, usagef("-loss %g: want a probability, at least 0 and below 1", o.loss)
	case math.IsNaN(o.dup) || o.dup < 0 || o.dup > 1:
		return nil, usagef("-dup %g: want a probability from 0 to 1", o.dup)
	case o.delay < 0:
		return nil, usagef("-delay %v: want 0 or more", o.delay)
	case o.url != "" && set["pages"]:
		return nil, usagef("-pages sizes the built-in site; it cannot be used with -url")
	}
	for _, name := range []string{"net", "loss", "dup", "delay"} {
		if set[name] && o.mode != "distributed" {
			return nil, usagef("-%s applies to -mode distributed only", name)
		}
	}
	if o.network == netTCP {
		if (set["loss"] && o.loss > 0) || (set["dup"] && o.dup > 0) || (set["delay"] && o.delay > 0) {
			return nil, usagef("-loss, -dup and -delay need -net labrpc (TCP on loopback loses nothing)")
		}
		o.loss, o.dup, o.delay = 0, 0, 0
	}
	if o.url != "" {
		u, err := crawler.Normalize(o.url)
		if err != nil {
			return nil, usagef("-url: %v", err)
		}
		o.url = u
	}
	return o, nil
}

// summary is what the crawl did; it is printed as text or JSON.
type summary struct {
	Mode      string  `json:"mode"`
	Network   string  `json:"network,omitempty"`
	Loss      float64 `json:"loss,omitempty"`
	Duplicate float64 `json:"duplicate,omitempty"`
	MaxDelay  string  `json:"max_delay,omitempty"`
	Workers   int     `json:"workers"`
	URL       string  `json:"url"`
	SitePages int     `json:"site_pages,omitempty"` // the built-in site's size; 0 for -url

	Pages        int   `json:"pages"`         // URLs fetched successfully, noindex ones included
	Failed       int   `json:"failed"`        // URLs that could not be fetched
	Fetches      int   `json:"fetches"`       // Fetch calls by the crawler
	Requests     int64 `json:"http_requests"` // page requests, retries included
	FetchRetries int64 `json:"fetch_retries"` // requests that repeated a failed one
	Refetched    int   `json:"refetched"`     // built-in site: pages served more than once

	RPCAttempts      uint64 `json:"rpc_attempts,omitempty"`
	RPCRetries       uint64 `json:"rpc_retries,omitempty"`
	Suppressed       uint64 `json:"duplicate_reports_suppressed"` // by the server's at-most-once table
	IgnoredReports   int    `json:"duplicate_reports_ignored"`    // by the scheduler
	Leases           int    `json:"leases,omitempty"`
	RepeatedLeases   int    `json:"leases_repeated,omitempty"`
	LeasesReassigned int    `json:"leases_reassigned"`

	Elapsed        time.Duration `json:"-"`
	ElapsedSeconds float64       `json:"elapsed_seconds"`
	PagesPerSecond float64       `json:"pages_per_second"`

	// Failures lists every URL that could not be fetched, and why; those
	// the built-in site causes on purpose say so.
	Failures []failure `json:"failures"`
	// NoIndex lists the URLs fetched (and counted in Pages) whose page
	// asked not to be indexed: <meta name="robots" content="noindex"> or
	// an X-Robots-Tag header.
	NoIndex []string `json:"noindex"`
	// Skipped counts the links not followed, by reason (distributed mode).
	Skipped []crawler.Skipped `json:"skipped,omitempty"`

	CheckOK bool   `json:"check_ok"`
	Check   string `json:"check"`
}

// failureList turns a URL -> reason map into a list sorted by URL.
func failureList[V any](m map[string]V, reason func(V) string) []failure {
	out := []failure{}
	for _, u := range slices.Sorted(maps.Keys(m)) {
		out = append(out, failure{URL: u, Reason: reason(m[u])})
	}
	return out
}

// markDeliberate marks the failures the built-in site at start causes on
// purpose: its broken link (a 404), and a page robots.txt forbids that a
// worker was leased before its robots.txt was read.
func markDeliberate(site *crawler.Site, start string, failures []failure) {
	base := strings.TrimSuffix(start, "/")
	for i, f := range failures {
		path, ok := strings.CutPrefix(f.URL, base)
		switch {
		case !ok:
		case slices.Contains(site.Missing(), path):
			failures[i].Deliberate = "the built-in site links to a page it does not have, to show a 404 is not retried"
		case slices.Contains(site.Disallowed(), path):
			failures[i].Deliberate = "the built-in site's robots.txt forbids this page; it was never requested"
		}
	}
}

func run(args []string, stdout io.Writer) error {
	return runContext(context.Background(), args, stdout)
}

func runContext(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "coordinator":
			return runCoordinator(ctx, args[1:], stdout)
		case "worker":
			return runWorker(ctx, args[1:], stdout)
		case "site":
			return runSite(ctx, args[1:], stdout)
		}
	}
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	cfg := crawler.DefaultConfig()
	var site *crawler.Site
	start := o.url
	if start == "" {
		site = crawler.NewSite(o.pages, o.seed)
		addr, stopSite, err := serve(site)
		if err != nil {
			return err
		}
		defer stopSite()
		start = "http://" + addr + "/"
		// Our own server on loopback: it may take every worker at once, and
		// its 503s need no long pause.
		cfg.MaxInFlightPerHost = max(cfg.MaxInFlightPerHost, o.workers)
		cfg.RetryInitialInterval = 10 * time.Millisecond
		cfg.RetryMaxInterval = 100 * time.Millisecond
	}
	hf, err := crawler.NewHTTPFetcher(nil)
	if err != nil {
		return err
	}
	defer hf.Close()
	polite, err := crawler.Polite(hf, cfg)
	if err != nil {
		return err
	}

	s := summary{Mode: o.mode, Workers: o.workers, URL: start}
	if site != nil {
		s.SitePages = o.pages
	}
	var bar *progress
	if !o.json {
		bar = newProgress(stdout, expectedURLs(site, o))
	}
	var fetched []string
	var check []string // problems found
	if o.mode == "distributed" {
		fetched, check, err = crawlDistributed(ctx, o, start, polite, bar, &s)
	} else {
		fetched, check, err = crawlLocal(ctx, o, start, polite, bar, &s)
	}
	if err != nil {
		return err
	}
	ps := polite.Stats()
	s.Requests, s.FetchRetries = ps.Requests, ps.Retries
	if site != nil {
		markDeliberate(site, start, s.Failures)
		problems, refetched := checkSite(site, start, fetched, s.NoIndex, s.Pages+s.Failed == len(site.Reachable())+len(site.Missing()))
		check = append(check, problems...)
		s.Refetched = refetched
	}
	s.ElapsedSeconds = s.Elapsed.Seconds()
	if s.Elapsed > 0 {
		s.PagesPerSecond = float64(s.Pages+s.Failed) / s.Elapsed.Seconds()
	}
	s.CheckOK = len(check) == 0
	if s.CheckOK {
		s.Check = fmt.Sprintf("every page reported exactly once (%d URLs)", s.Pages+s.Failed)
		if o.mode == "distributed" {
			s.Check = fmt.Sprintf("every page reported exactly once (%d URLs, no report executed twice)", s.Pages+s.Failed)
		}
	} else {
		s.Check = strings.Join(check, "; ")
	}

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printSummary(stdout, &s)
	}
	if !s.CheckOK {
		return errCheckFailed
	}
	return nil
}

// serve serves site on a loopback port until stop is called.
func serve(site *crawler.Site) (addr string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("serve the built-in site: %w", err)
	}
	srv := &http.Server{Handler: site, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l) // returns http.ErrServerClosed after Shutdown
	}()
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// expectedURLs is how many URLs a full crawl of the built-in site reports,
// for the progress bar; 0 if unknown.
func expectedURLs(site *crawler.Site, o *options) int {
	if site == nil || o.depth > 0 {
		return 0
	}
	return min(len(site.Reachable())+len(site.Missing()), o.maxPages)
}

func crawlDistributed(ctx context.Context, o *options, start string, f crawler.Fetcher, bar *progress, s *summary) ([]string, []string, error) {
	s.Network = o.network
	s.Loss, s.Duplicate = o.loss, o.dup
	if o.delay > 0 {
		s.MaxDelay = o.delay.String()
	}
	cfg := crawler.DistributedConfig{
		StartURL: start, Fetcher: f, Workers: o.workers,
		MaxPages: o.maxPages, MaxDepth: o.depth,
	}
	if o.network == netLabrpc {
		cfg.Network = &labnet.Network{Loss: o.loss, Duplicate: o.dup, MaxDelay: o.delay, Seed: o.seed}
	}
	if bar != nil {
		cfg.ProgressInterval = bar.interval
		cfg.Progress = func(p crawler.DistributedProgress) { bar.update(p.Pages+p.Failed, p.Queued+p.Leased, p.Elapsed) }
	}
	res, err := crawler.DistributedCrawl(ctx, cfg)
	bar.finish()
	if err != nil {
		return nil, nil, err
	}
	c := res.Coordinator
	s.Pages, s.Failed = c.Pages, c.Failed
	s.Fetches = res.Workers.Fetches
	s.RPCAttempts, s.RPCRetries = res.RPCAttempts, res.RPCRetries
	s.Suppressed, s.IgnoredReports = res.TableDuplicates, c.Duplicates
	s.Leases, s.RepeatedLeases, s.LeasesReassigned = c.Leases, c.RepeatedLeases, c.Reassigned
	s.Elapsed = res.Elapsed
	var check []string
	if res.Check != nil {
		check = append(check, res.Check.Error())
	}
	s.Failures = failureList(res.Failed, func(r string) string { return r })
	s.NoIndex = append([]string{}, res.NoIndex...)
	s.Skipped = res.Skipped
	fetched := append(slices.Clone(res.Fetched), res.NoIndex...)
	for u := range res.Failed {
		fetched = append(fetched, u)
	}
	return fetched, check, nil
}

func crawlLocal(ctx context.Context, o *options, start string, f crawler.Fetcher, bar *progress, s *summary) ([]string, []string, error) {
	strategy, err := crawler.StrategyByName(o.mode)
	if err != nil {
		return nil, nil, err
	}
	counted := &countingFetcher{inner: f}
	begin := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if bar != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(bar.interval)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					bar.update(int(counted.n.Load()), -1, time.Since(begin))
				case <-stop:
					return
				}
			}
		}()
	}
	res, err := strategy(ctx, start, counted, crawler.WithMaxPages(o.maxPages), crawler.WithMaxDepth(o.depth),
		crawler.WithParallelism(o.workers))
	s.Elapsed = time.Since(begin)
	close(stop)
	wg.Wait()
	bar.update(res.Fetches, -1, s.Elapsed)
	bar.finish()
	if err != nil {
		return nil, nil, err
	}
	s.Pages, s.Failed, s.Fetches = len(res.Fetched)+len(res.NoIndex), len(res.Errors), res.Fetches
	s.Failures = failureList(res.Errors, func(err error) string { return err.Error() })
	s.NoIndex = append([]string{}, res.NoIndex...)
	fetched := append(slices.Clone(res.Fetched), res.NoIndex...)
	for u := range res.Errors {
		fetched = append(fetched, u)
	}
	var check []string
	if n := len(res.Fetched) + len(res.NoIndex) + len(res.Errors); n != res.Fetches || int(counted.n.Load()) != n {
		check = append(check, fmt.Sprintf("%d URLs reported after %d fetches", n, counted.n.Load()))
	}
	return fetched, check, nil
}

// countingFetcher counts finished fetches, for the progress bar. It is a
// PageFetcher, so that the strategies still learn which pages are noindex.
type countingFetcher struct {
	inner crawler.Fetcher
	n     atomic.Int64
}

func (c *countingFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	links, err := c.inner.Fetch(ctx, url)
	c.n.Add(1)
	return links, err
}

func (c *countingFetcher) FetchPage(ctx context.Context, url string) (*crawler.Page, error) {
	defer c.n.Add(1)
	if pf, ok := c.inner.(crawler.PageFetcher); ok {
		return pf.FetchPage(ctx, url)
	}
	links, err := c.inner.Fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	return &crawler.Page{URL: url, Links: links}, nil
}

// checkSite compares the reported URLs (noindex ones included) with what
// the built-in site says: no URL reported twice, none it must not serve,
// each requested page served once (refetched counts those served more
// often, which is allowed but should be rare), and, if the crawl was
// complete, every reachable page, with exactly the site's noindex pages
// reported as noindex.
func checkSite(site *crawler.Site, start string, reported, noIndex []string, complete bool) (problems []string, refetched int) {
	base := strings.TrimSuffix(start, "/")
	seen := make(map[string]bool, len(reported))
	dups := 0
	for _, u := range reported {
		if seen[u] {
			dups++
		}
		seen[u] = true
	}
	if dups > 0 {
		problems = append(problems, fmt.Sprintf("%d URLs reported twice", dups))
	}
	for _, u := range reported {
		if p, ok := strings.CutPrefix(u, base); ok && site.Served(p) > 1 {
			refetched++
		}
	}
	forbidden := 0
	for _, p := range append(site.Disallowed(), site.Unlinked()...) {
		forbidden += site.Hits(p)
	}
	if forbidden > 0 {
		problems = append(problems, fmt.Sprintf("%d requests for pages robots.txt forbids or nothing links to", forbidden))
	}
	if complete {
		missed := 0
		for _, p := range append(site.Reachable(), site.Missing()...) {
			if !seen[base+p] {
				missed++
			}
		}
		if missed > 0 {
			problems = append(problems, fmt.Sprintf("%d reachable pages never reported", missed))
		}
		var want []string
		for _, p := range site.NoIndex() {
			want = append(want, base+p)
		}
		if got := slices.Sorted(slices.Values(noIndex)); !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("noindex pages reported %v, want %v", got, want))
		}
	}
	return problems, refetched
}

func printSummary(w io.Writer, s *summary) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-18s %s\n", label, fmt.Sprintf(format, args...))
	}
	how := s.Mode
	switch {
	case s.Mode == "distributed" && s.Network == netLabrpc:
		how = fmt.Sprintf("distributed, %d workers over labrpc (%.1f%% loss each way, %.1f%% duplication, delays up to %s)",
			s.Workers, 100*s.Loss, 100*s.Duplicate, cmp.Or(s.MaxDelay, "0s"))
	case s.Mode == "distributed":
		how = fmt.Sprintf("distributed, %d workers over TCP", s.Workers)
	case s.Mode != "serial":
		how = fmt.Sprintf("%s, %d fetches in flight", s.Mode, s.Workers)
	}
	line("crawl", "%s", how)
	if s.SitePages > 0 {
		line("site", "built-in, %d pages at %s", s.SitePages, s.URL)
	} else {
		line("site", "%s", s.URL)
	}
	line("pages", "%d fetched, %d failed", s.Pages, s.Failed)
	printNoIndex(line, s.NoIndex)
	line("fetches", "%d (%d HTTP requests, %d fetch retries, %d pages fetched twice)",
		s.Fetches, s.Requests, s.FetchRetries, s.Refetched)
	if s.Mode == "distributed" {
		line("rpc", "%d attempts, %d retries", s.RPCAttempts, s.RPCRetries)
		line("duplicate reports", "%d suppressed by the at-most-once table, %d ignored by the scheduler",
			s.Suppressed, s.IgnoredReports)
		line("leases", "%d handed out, %d handed again after a lost reply, %d reassigned",
			s.Leases, s.RepeatedLeases, s.LeasesReassigned)
	}
	line("elapsed", "%v (%.0f pages/s)", s.Elapsed.Round(time.Millisecond), s.PagesPerSecond)
	if s.Mode == "distributed" {
		printSkipped(line, s.Skipped)
	}
	printFailures(w, line, s.Failures)
	if s.CheckOK {
		line("check", "ok: %s", s.Check)
	} else {
		line("check", "FAILED: %s", s.Check)
	}
}
