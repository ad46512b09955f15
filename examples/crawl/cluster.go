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
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/crawler/cluster"
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
	listen         string
	urls           stringList
	hosts          string
	data           string
	json           bool
	lease          time.Duration
	maxPages       int
	depth          int
	hostLimit      int
	delay          time.Duration
	maxDelay       time.Duration
	retries        int
	retryDelay     time.Duration
	linger         time.Duration
	progressTime   time.Duration
	processTimeout time.Duration
}

const coordinatorUsage = `Usage: crawl coordinator -listen ADDR -url URL [-url URL...] [-hosts H1,H2] [-data DIR] [flags]

Serves a crawl to worker processes ("crawl worker -coordinator ADDR") over TCP
with semrpc: workers lease URLs (at-least-once) and report them (at-most-once).
Politeness holds across the cluster: each host gets at most -max-in-flight
leases at once, -delay (or the Crawl-delay its robots.txt asks for, or its
Retry-After) apart, whichever workers fetch; a lease's time starts only when
its host has a slot. A worker process silent for -worker-timeout (killed, or
cut off) loses its leases at once, rather than after -lease. When the crawl
is complete it tells the workers, prints a summary (pages, failures, links
skipped by reason, worker processes) and exits 0; it exits 1 with the reason
if nothing could be fetched.

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
	fs.DurationVar(&o.processTimeout, "worker-timeout", crawler.DefaultProcessTimeout, "free the leases of a worker process silent for `D` (killed, or cut off)")
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
	case o.processTimeout <= 0:
		return nil, usagef("coordinator: -worker-timeout %v: want more than 0", o.processTimeout)
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
	Mode string `json:"mode"` // "coordinator"
	*cluster.Report
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
	cfg := cluster.CoordinatorConfig{
		Listen:  o.listen,
		DataDir: o.data,
		Linger:  o.linger,
		Crawl: crawler.CoordinatorConfig{
			StartURLs: o.urls, Hosts: hosts, LeaseTimeout: o.lease, MaxPages: o.maxPages, MaxDepth: o.depth,
			HostLimit: o.hostLimit, HostDelay: o.delay, MaxHostDelay: o.maxDelay, MaxRetries: o.retries,
			RetryDelay: o.retryDelay, ProcessTimeout: o.processTimeout,
		},
		Started: func(s cluster.Started) {
			how := "in memory (cannot resume)"
			st := s.Stats
			switch {
			case s.Complete:
				how = fmt.Sprintf("in %s is already complete: %d done", s.Store, st.Pages+st.Failed)
			case s.Resumed:
				how = fmt.Sprintf("resumed from %s (start %d): %d done, %d queued, %d leased",
					s.Store, st.Restarts+1, st.Pages+st.Failed, st.Queued, st.Leased)
			case s.Store != "":
				how = "in " + s.Store
			}
			fmt.Fprintf(logOut, "coordinator: listening on %s; crawl %s\n", s.Addr, how)
		},
		ProcessLost: func(p cluster.Progress) {
			fmt.Fprintf(logOut, "coordinator: a worker process fell silent, its leases freed (%d processes lost, %d leases freed so far), %v\n",
				p.ProcessesLost, p.LostLeases, p.Elapsed.Round(time.Millisecond))
		},
	}
	if o.linger == 0 {
		cfg.Linger = -1
	}
	if o.progressTime > 0 {
		cfg.ProgressInterval = o.progressTime
		cfg.Progress = func(p cluster.Progress) {
			fmt.Fprintf(logOut, "coordinator: %d done (%d failed), %d queued, %d leased, %v\n",
				p.Pages+p.Failed, p.Failed, p.Queued, p.Leased, p.Elapsed.Round(time.Millisecond))
		}
	}
	rep, err := cluster.RunCoordinator(ctx, cfg)
	if err != nil {
		if errors.Is(err, cluster.ErrInterrupted) && o.data != "" {
			return fmt.Errorf("interrupted; start again with -data %s to resume", o.data)
		}
		if errors.Is(err, cluster.ErrInterrupted) {
			return errors.New("interrupted; the crawl is lost (no -data)")
		}
		return err
	}
	s := clusterSummary{Mode: "coordinator", Report: rep}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printClusterSummary(stdout, rep)
	}
	switch {
	case !rep.CheckOK:
		return errCheckFailed
	case rep.Pages == 0:
		reason := "no URL"
		if len(rep.Failures) > 0 {
			reason = fmt.Sprintf("%s: %s", rep.Failures[0].URL, rep.Failures[0].Reason)
		}
		return fmt.Errorf("nothing could be fetched (%s)", reason)
	}
	return nil
}

func printClusterSummary(w io.Writer, s *cluster.Report) {
	elapsed := time.Duration(s.ElapsedSeconds * float64(time.Second))
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-18s %s\n", label, fmt.Sprintf(format, args...))
	}
	how := "in memory"
	if s.Data != "" {
		how = fmt.Sprintf("durable in %s, %s", s.Data, plural(s.Restarts, "restart", "restarts"))
	}
	line("crawl", "coordinator on %s, %s, %s (%s)", s.Listen, how,
		plural(s.Workers, "worker process", "worker processes"), plural(s.Fetchers, "fetcher", "fetchers"))
	if s.ProcessesLost > 0 {
		line("lost workers", "%s fell silent; %s freed at once",
			plural(s.ProcessesLost, "worker process", "worker processes"), plural(s.LostLeases, "lease", "leases"))
	}
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
	printSkipped(line, s.Skipped)
	printFailures(w, line, asFailures(s.Failures))
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

// failure is a URL that could not be fetched, and why; Deliberate, if not
// empty, says why the failure was meant to happen (the built-in site's
// broken link, say).
type failure struct {
	URL        string `json:"url"`
	Reason     string `json:"reason"`
	Deliberate string `json:"deliberate,omitempty"`
}

func asFailures(fs []crawler.Failure) []failure {
	out := make([]failure, 0, len(fs))
	for _, f := range fs {
		out = append(out, failure{URL: f.URL, Reason: f.Reason})
	}
	return out
}

// printFailures lists the first few failures, and how many more there are.
func printFailures(w io.Writer, line func(label, format string, args ...any), failures []failure) {
	for i, f := range failures {
		if i == textFailures {
			line("", "... and %d more (-json lists them all)", len(failures)-textFailures)
			break
		}
		label := ""
		if i == 0 {
			label = "failures"
		}
		if f.Deliberate != "" {
			line(label, "%s: %s (deliberate: %s)", f.URL, f.Reason, f.Deliberate)
		} else {
			line(label, "%s: %s", f.URL, f.Reason)
		}
	}
}

// textSkipExamples is how many examples of each skip reason the text
// summary shows (-json shows crawler.MaxSkippedExamples).
const textSkipExamples = 2

// printSkipped says how many links were not followed, by reason, with an
// example or two; "none" if every link was followed.
func printSkipped(line func(label, format string, args ...any), skipped []crawler.Skipped) {
	if len(skipped) == 0 {
		line("skipped links", "none")
		return
	}
	for i, s := range skipped {
		label := ""
		if i == 0 {
			label = "skipped links"
		}
		ex := s.Examples[:min(len(s.Examples), textSkipExamples)]
		more := ""
		if len(ex) < s.Links {
			more = ", ..."
		}
		line(label, "%s: %d (%s%s)", s.Reason, s.Links, strings.Join(ex, " "), more)
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
Killed, it stops sending heartbeats, and the coordinator frees its leases
once it has been silent for the coordinator's -worker-timeout (1.5s).
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
	rep, err := cluster.RunWorkers(ctx, cluster.WorkersConfig{
		Coordinator: o.coordinator, Fetchers: o.workers, Label: o.name, Patience: o.patience,
		Started: func(name string) {
			fmt.Fprintf(logOut, "worker %s: %d fetchers, coordinator %s\n", name, o.workers, o.coordinator)
		},
	})
	if rep != nil {
		st := rep.Stats
		fmt.Fprintf(stdout, "worker %s: %d fetches (%d failed, %d HTTP requests), %d reports (%d duplicates, %d resent), %d lease errors\n",
			rep.Name, st.Fetches, st.FetchErrors, rep.Fetcher.Requests, st.Reports, st.Duplicates, st.ReportResends, st.LeaseErrors)
	}
	switch {
	case errors.Is(err, cluster.ErrInterrupted):
		return fmt.Errorf("worker %s interrupted; %d leases given back to the coordinator", rep.Name, rep.Released)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "worker %s: the crawl is over\n", rep.Name)
	return nil
}

// plural returns n and one if n is 1, else n and many: "1 restart", "3
// restarts".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
