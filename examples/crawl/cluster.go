package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// logOut receives the coordinator's and workers' progress lines.
var logOut io.Writer = os.Stderr

// textFailures is how many failures the text summary lists.
const textFailures = 5

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

type coordOptions struct {
	listen       string
	urls         stringList
	hosts        string
	data         string
	json         bool
	lease        time.Duration
	maxPages     int
	depth        int
	hostLimit    int
	delay        time.Duration
	maxDelay     time.Duration
	retries      int
	retryDelay   time.Duration
	linger       time.Duration
	progressTime time.Duration
}

const coordinatorUsage = `Usage: crawl coordinator -listen ADDR -url URL [-url URL...] [-hosts H1,H2] [-data DIR] [flags]

Serves a crawl to worker processes ("crawl worker -coordinator ADDR") over TCP
with semrpc: workers lease URLs (at-least-once) and report them (at-most-once).
Politeness holds across the cluster: each host gets at most -max-in-flight
leases at once, -delay (or the Crawl-delay its robots.txt asks for, or its
Retry-After) apart, whichever workers fetch; a lease's time starts only when
its host has a slot. When the crawl is complete it tells the workers, prints a
summary and exits 0; it exits 1 with the reason if nothing could be fetched.

With -data the crawl lives in DIR (created if missing, one bbolt file): a
coordinator killed at any moment and started again with the same -data
resumes it (-url may then be omitted); no page is lost, none reported is
leased again. WITHOUT -data THE CRAWL IS IN MEMORY: a coordinator that dies
loses it, and it cannot resume.

Flags:
`

func parseCoordinator(args []string, stdout io.Writer) (*coordOptions, error) {
	o := &coordOptions{}
	fs := flag.NewFlagSet("crawl coordinator", flag.ContinueOnError)
	var errBuf strings.Builder
	fs.SetOutput(&errBuf)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7077", "serve workers on TCP `ADDR`")
	fs.Var(&o.urls, "url", "start the crawl at `URL` (repeatable)")
	fs.StringVar(&o.hosts, "hosts", "", "comma-separated `HOSTS` the crawl may enter besides the start URLs' (host[:port], or scheme://host[:port])")
	fs.StringVar(&o.data, "data", "", "keep the crawl in `DIR`, so that a restarted coordinator resumes it (default: in memory, cannot resume)")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON (every failure listed)")
	fs.DurationVar(&o.lease, "lease", 30*time.Second, "a worker has `D` to report a URL before it is handed to another")
	fs.IntVar(&o.maxPages, "max-pages", 10000, "admit at most `N` URLs to the crawl")
	fs.IntVar(&o.depth, "depth", 0, "follow links at most `N` hops from the start URLs (0: no limit)")
	fs.IntVar(&o.hostLimit, "max-in-flight", crawler.DefaultConfig().MaxInFlightPerHost, "at most `N` requests in flight to one host, over all workers")
	fs.DurationVar(&o.delay, "delay", 0, "at least `D` between two requests to one host (a larger robots.txt Crawl-delay wins)")
	fs.DurationVar(&o.maxDelay, "max-crawl-delay", 10*time.Second, "cap `D` on the Crawl-delay and Retry-After a host may impose (0: no cap)")
	fs.IntVar(&o.retries, "retries", 3, "queue a URL that failed transiently (5xx, 429, network) again up to `N` times")
	fs.DurationVar(&o.retryDelay, "retry-delay", 200*time.Millisecond, "wait `D` before a URL's first retry (doubled at each retry)")
	fs.DurationVar(&o.linger, "linger", 5*time.Second, "once the crawl is over, keep telling workers so for up to `D`")
	fs.DurationVar(&o.progressTime, "progress", 2*time.Second, "print progress to stderr every `D` (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, coordinatorUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("coordinator: unexpected argument %q (flags only)", fs.Arg(0))
	}
	switch {
	case len(o.urls) == 0 && o.data == "":
		return nil, usagef("coordinator: give at least one -url (or -data DIR of a crawl to resume)")
	case o.lease <= 0:
		return nil, usagef("coordinator: -lease %v: want more than 0", o.lease)
	case o.maxPages < 1:
		return nil, usagef("coordinator: -max-pages %d: want at least 1", o.maxPages)
	case o.depth < 0:
		return nil, usagef("coordinator: -depth %d: want 0 (no limit) or more", o.depth)
	case o.hostLimit < 1:
		return nil, usagef("coordinator: -max-in-flight %d: want at least 1", o.hostLimit)
	case o.delay < 0 || o.maxDelay < 0 || o.retryDelay < 0 || o.linger < 0 || o.progressTime < 0:
		return nil, usagef("coordinator: durations must not be negative")
	case o.retries < 0:
		return nil, usagef("coordinator: -retries %d: want 0 or more", o.retries)
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return nil, usagef("coordinator: -listen %q: %v", o.listen, err)
	}
	for i, u := range o.urls {
		n, err := crawler.Normalize(u)
		if err != nil {
			return nil, usagef("coordinator: -url %q: %v", u, err)
		}
		o.urls[i] = n
	}
	return o, nil
}

// hostList turns -hosts into host keys (host[:port]; see crawler.HostKey).
func hostList(spec string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(spec, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		k, err := crawler.HostKey(h)
		if err != nil {
			return nil, fmt.Errorf("-hosts: %q: %v", h, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// clusterSummary is what a coordinator prints when the crawl is over.
type clusterSummary struct {
	Mode      string   `json:"mode"` // "coordinator"
	Listen    string   `json:"listen"`
	Data      string   `json:"data,omitempty"`
	Restarts  int      `json:"restarts"`
	StartURLs []string `json:"start_urls"`
	Hosts     []string `json:"hosts,omitempty"`

	Pages            int    `json:"pages"`
	Failed           int    `json:"failed"`
	Workers          int    `json:"workers"`  // worker processes seen by this run
	Fetchers         int    `json:"fetchers"` // their fetchers (each leases on its own)
	Reports          int    `json:"reports"`
	Suppressed       uint64 `json:"duplicate_reports_suppressed"`
	IgnoredReports   int    `json:"duplicate_reports_ignored"`
	Leases           int    `json:"leases"`
	RepeatedLeases   int    `json:"leases_repeated"`
	LeasesReassigned int    `json:"leases_reassigned"`
	LeasesReleased   int    `json:"leases_released"`
	Retried          int    `json:"retried"`

	ElapsedSeconds float64 `json:"elapsed_seconds"`
	PagesPerSecond float64 `json:"pages_per_second"`

	Failures []crawler.Failure `json:"failures"`
	// NoIndex lists the URLs fetched (and counted in Pages) whose page
	// asked not to be indexed.
	NoIndex []string `json:"noindex"`

	CheckOK bool   `json:"check_ok"`
	Check   string `json:"check"`
}

func runCoordinator(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseCoordinator(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	hosts, err := hostList(o.hosts)
	if err != nil {
		return usagef("coordinator: %v", err)
	}
	cfg := crawler.CoordinatorConfig{
		StartURLs: o.urls, LeaseTimeout: o.lease, MaxPages: o.maxPages, MaxDepth: o.depth,
		HostLimit: o.hostLimit, HostDelay: o.delay, MaxHostDelay: o.maxDelay, MaxRetries: o.retries,
		RetryDelay: o.retryDelay,
	}
	// Listen first: a coordinator that cannot serve leaves its store as it
	// was (no restart counted).
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer l.Close()
	resuming := false
	if o.data != "" {
		store, err := crawler.OpenCrawlStore(o.data)
		if err != nil {
			return err
		}
		defer store.Close()
		cfg.Store = store
		if resuming, err = store.HasCrawl(); err != nil {
			return err
		}
	}
	if len(hosts) == 0 && !resuming {
		// The crawl stays on the start URLs' hosts (and their www/apex
		// variants, for redirects). A resumed crawl keeps its own.
		for _, u := range o.urls {
			k, _ := crawler.HostKey(u)
			hosts = append(hosts, k)
		}
	}
	cfg.Hosts = hosts
	coord, err := crawler.NewCoordinator(cfg)
	if err != nil {
		return err
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		return err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		core.Serve(l) // returns ErrServerClosed after Shutdown or Close
	}()
	stopServing := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		core.Shutdown(sctx)
		<-served
	}
	st := coord.Stats()
	how := "in memory (cannot resume)"
	if o.data != "" {
		how = "in " + cfg.Store.Path()
		switch {
		case resuming && st.Queued+st.Leased == 0:
			how = fmt.Sprintf("in %s is already complete: %d done", cfg.Store.Path(), st.Pages+st.Failed)
		case resuming:
			how = fmt.Sprintf("resumed from %s (start %d): %d done, %d queued, %d leased",
				cfg.Store.Path(), st.Restarts+1, st.Pages+st.Failed, st.Queued, st.Leased)
		}
	}
	fmt.Fprintf(logOut, "coordinator: listening on %s; crawl %s\n", l.Addr(), how)

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if o.progressTime > 0 {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			tick := time.NewTicker(o.progressTime)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					p := coord.Stats()
					fmt.Fprintf(logOut, "coordinator: %d done (%d failed), %d queued, %d leased, %v\n",
						p.Pages+p.Failed, p.Failed, p.Queued, p.Leased, coord.Elapsed().Round(time.Millisecond))
				case <-stopProgress:
					return
				}
			}
		}()
	}
	defer func() {
		close(stopProgress)
		progressDone.Wait()
	}()

	select {
	case <-coord.Done():
	case <-ctx.Done():
		stopServing()
		if o.data != "" {
			return fmt.Errorf("interrupted; start again with -data %s to resume", o.data)
		}
		return errors.New("interrupted; the crawl is lost (no -data)")
	}
	if err := coord.Err(); err != nil {
		stopServing()
		return fmt.Errorf("coordinator stopped: %w (start again with the same -data to resume from the last write)", err)
	}
	lctx, cancel := context.WithTimeout(ctx, o.linger)
	coord.WaitWorkersTold(lctx, max(time.Second, 4*crawler.DefaultPollInterval))
	cancel()
	table := core.Stats().Table
	fetchers := coord.Workers()
	procs := map[string]bool{}
	for _, name := range fetchers {
		proc, _, _ := strings.Cut(name, "/")
		procs[proc] = true
	}
	stopServing()

	cs := coord.Stats()
	s := clusterSummary{
		Mode: "coordinator", Listen: l.Addr().String(), Data: o.data, Restarts: cs.Restarts,
		StartURLs: coord.StartURLs(), Hosts: coord.Hosts(),
		Pages: cs.Pages, Failed: cs.Failed, Workers: len(procs), Fetchers: len(fetchers), Reports: cs.Reports,
		Suppressed: table.Duplicates + table.InFlightWaits, IgnoredReports: cs.Duplicates,
		Leases: cs.Leases, RepeatedLeases: cs.RepeatedLeases, LeasesReassigned: cs.Reassigned,
		LeasesReleased: cs.Released, Retried: cs.Retried,
		Failures: coord.Failures(),
		NoIndex:  append([]string{}, coord.NoIndex()...),
	}
	if s.Failures == nil {
		s.Failures = []crawler.Failure{}
	}
	elapsed := coord.Elapsed()
	s.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		s.PagesPerSecond = float64(s.Pages+s.Failed) / elapsed.Seconds()
	}
	if err := coord.Check(); err != nil {
		s.Check = err.Error()
	} else {
		s.CheckOK = true
		s.Check = fmt.Sprintf("every page reported exactly once (%d URLs, no report executed twice)", s.Pages+s.Failed)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printClusterSummary(stdout, &s, elapsed)
	}
	switch {
	case !s.CheckOK:
		return errCheckFailed
	case s.Pages == 0:
		reason := "no URL"
		if len(s.Failures) > 0 {
			reason = fmt.Sprintf("%s: %s", s.Failures[0].URL, s.Failures[0].Reason)
		}
		return fmt.Errorf("nothing could be fetched (%s)", reason)
	}
	return nil
}

func printClusterSummary(w io.Writer, s *clusterSummary, elapsed time.Duration) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-18s %s\n", label, fmt.Sprintf(format, args...))
	}
	how := "in memory"
	if s.Data != "" {
		how = fmt.Sprintf("durable in %s, %d restarts", s.Data, s.Restarts)
	}
	line("crawl", "coordinator on %s, %s, %d worker processes (%d fetchers)", s.Listen, how, s.Workers, s.Fetchers)
	line("start", "%s", strings.Join(s.StartURLs, " "))
	if len(s.Hosts) > 0 {
		line("hosts", "%s", strings.Join(s.Hosts, " "))
	}
	line("pages", "%d fetched, %d failed", s.Pages, s.Failed)
	printNoIndex(line, s.NoIndex)
	line("duplicate reports", "%d suppressed by the at-most-once table, %d ignored by the scheduler",
		s.Suppressed, s.IgnoredReports)
	line("leases", "%d handed out, %d handed again after a lost reply, %d reassigned, %d released, %d retries",
		s.Leases, s.RepeatedLeases, s.LeasesReassigned, s.LeasesReleased, s.Retried)
	line("elapsed", "%v (%.0f pages/s)", elapsed.Round(time.Millisecond), s.PagesPerSecond)
	printFailures(w, line, s.Failures)
	if s.CheckOK {
		line("check", "ok: %s", s.Check)
	} else {
		line("check", "FAILED: %s", s.Check)
	}
}

// printNoIndex says how many of the fetched pages asked not to be indexed;
// nothing if none did.
func printNoIndex(line func(label, format string, args ...any), noIndex []string) {
	if len(noIndex) > 0 {
		line("noindex", "%d not indexed (noindex)", len(noIndex))
	}
}

// printFailures lists the first few failures, and how many more there are.
func printFailures(w io.Writer, line func(label, format string, args ...any), failures []crawler.Failure) {
	for i, f := range failures {
		if i == textFailures {
			line("", "... and %d more (-json lists them all)", len(failures)-textFailures)
			break
		}
		label := ""
		if i == 0 {
			label = "failures"
		}
		line(label, "%s: %s", f.URL, f.Reason)
	}
}

type workerOptions struct {
	coordinator string
	workers     int
	name        string
	patience    time.Duration
}

const workerUsage = `Usage: crawl worker -coordinator ADDR [-workers N] [-name LABEL] [-patience D]

Fetches the URLs a coordinator ("crawl coordinator") leases to it, obeying
robots.txt, and reports their links. It waits for a coordinator that is not up
yet or restarting, for up to -patience since it last answered, and exits 0 when
the coordinator says the crawl is over. Interrupted, it gives its leases back
to the coordinator, so that other workers fetch them at once, and exits 1.
Every worker process has a unique identity (LABEL plus a random suffix), so
several may share a label.

Flags:
`

func parseWorker(args []string, stdout io.Writer) (*workerOptions, error) {
	o := &workerOptions{}
	fs := flag.NewFlagSet("crawl worker", flag.ContinueOnError)
	var errBuf strings.Builder
	fs.SetOutput(&errBuf)
	fs.StringVar(&o.coordinator, "coordinator", "", "the coordinator's TCP `ADDR` (host:port)")
	fs.IntVar(&o.workers, "workers", 4, "fetch up to `N` URLs at once")
	host, _ := os.Hostname()
	fs.StringVar(&o.name, "name", "worker@"+host, "`LABEL` of this worker in the coordinator's logs (a random suffix keeps it unique)")
	fs.DurationVar(&o.patience, "patience", crawler.DefaultPatience, "give up after `D` without an answer from the coordinator")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, workerUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, &usageError{msg: err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("worker: unexpected argument %q (flags only)", fs.Arg(0))
	case o.coordinator == "":
		return nil, usagef("worker: -coordinator ADDR is required")
	case o.workers < 1:
		return nil, usagef("worker: -workers %d: want at least 1", o.workers)
	case o.patience <= 0:
		return nil, usagef("worker: -patience %v: want more than 0", o.patience)
	case strings.Contains(o.name, "/"):
		return nil, usagef("worker: -name %q: no '/' please", o.name)
	}
	if _, _, err := net.SplitHostPort(o.coordinator); err != nil {
		return nil, usagef("worker: -coordinator %q: %v", o.coordinator, err)
	}
	return o, nil
}

func runWorker(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseWorker(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	hf, err := crawler.NewHTTPFetcher(nil)
	if err != nil {
		return err
	}
	defer hf.Close()
	cfg := crawler.DefaultConfig()
	// The coordinator decides which hosts the crawl enters (every lease
	// names them), how many requests each gets and when, and when a failed
	// URL is tried again: this process obeys robots.txt and its own pacing,
	// and never holds more requests to a host than it holds leases.
	cfg.MaxRetries = 0
	cfg.MaxInFlightPerHost = o.workers
	polite, err := crawler.Polite(hf, cfg)
	if err != nil {
		return err
	}
	client, err := rpc.Dial(ctx, "tcp", o.coordinator, rpc.WithSemantics(semantics.AtLeastOnce()))
	if err != nil {
		return err
	}
	defer client.Close()

	name := crawler.NewWorkerName(o.name)
	fmt.Fprintf(logOut, "worker %s: %d fetchers, coordinator %s\n", name, o.workers, o.coordinator)
	stats := make([]crawler.WorkerStats, o.workers)
	errs := make([]error, o.workers)
	var wg sync.WaitGroup
	for i := range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = crawler.RunWorkerWith(ctx, client, polite, crawler.WorkerConfig{
				Name: fmt.Sprintf("%s/%d", name, i), Patience: o.patience, RetryTransient: true})
		}()
	}
	wg.Wait()
	released := 0
	if ctx.Err() != nil {
		// Interrupted: give the leases back, so that other workers fetch
		// their URLs now rather than after the lease time.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for i := range o.workers {
			var rr crawler.ReleaseReply
			err := client.Call(rctx, "Coordinator.Release", crawler.LeaseArgs{Worker: fmt.Sprintf("%s/%d", name, i)}, &rr)
			if err == nil && rr.Released {
				released++
			}
		}
		cancel()
	}
	var total crawler.WorkerStats
	for _, st := range stats {
		total.Add(st)
	}
	ps := polite.Stats()
	fmt.Fprintf(stdout, "worker %s: %d fetches (%d failed, %d HTTP requests), %d reports (%d duplicates, %d resent), %d lease errors\n",
		name, total.Fetches, total.FetchErrors, ps.Requests, total.Reports, total.Duplicates, total.ReportResends, total.LeaseErrors)
	if ctx.Err() != nil {
		return fmt.Errorf("worker %s interrupted; %d leases given back to the coordinator", name, released)
	}
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmpOr(first, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d fetchers stopped; the first: %w", failed, o.workers, first)
	}
	fmt.Fprintf(stdout, "worker %s: the crawl is over\n", name)
	return nil
}

// cmpOr returns a if it is not nil, else b.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
