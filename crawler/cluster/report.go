package cluster

import (
	"fmt"

	"github.com/semrpc/semrpc/crawler"
)

// Report is what a coordinator did, over every start on its store; its
// JSON form is what "crawl coordinator -json" prints.
type Report struct {
	// Listen is the address the coordinator served; Data its data
	// directory (empty if in memory).
	Listen string `json:"listen"`
	Data   string `json:"data,omitempty"`
	// Restarts counts the coordinator's starts on this crawl after the
	// first (see crawler.CoordinatorStats.Restarts).
	Restarts  int      `json:"restarts"`
	StartURLs []string `json:"start_urls"`
	Hosts     []string `json:"hosts,omitempty"`

	// Pages counts URLs fetched, NoIndex ones included; Failed those that
	// could not be.
	Pages  int `json:"pages"`
	Failed int `json:"failed"`
	// Workers counts the worker processes that took part, over every
	// start of the coordinator; Fetchers the workers they ran.
	Workers  int `json:"workers"`
	Fetchers int `json:"fetchers"`
	// ProcessesLost counts worker processes that fell silent (killed, or
	// cut off); LostLeases the leases then freed for other workers.
	ProcessesLost int `json:"processes_lost"`
	LostLeases    int `json:"leases_freed_from_lost_processes"`
	// Reports counts Report executions; Suppressed the duplicate reports
	// the rpc server's at-most-once table answered without running them;
	// IgnoredReports the reports the scheduler ignored (the URL was
	// reported already).
	Reports        int    `json:"reports"`
	Suppressed     uint64 `json:"duplicate_reports_suppressed"`
	IgnoredReports int    `json:"duplicate_reports_ignored"`
	// Leases counts leases handed out; RepeatedLeases those handed again
	// after a lost reply; LeasesReassigned those that expired;
	// LeasesReleased those given back (by a stopping worker, or freed from
	// a lost process); Retried the URLs queued again after a transient
	// failure.
	Leases           int `json:"leases"`
	RepeatedLeases   int `json:"leases_repeated"`
	LeasesReassigned int `json:"leases_reassigned"`
	LeasesReleased   int `json:"leases_released"`
	Retried          int `json:"retried"`

	// ElapsedSeconds is the crawl's time over every start on its store;
	// PagesPerSecond the URLs done (Pages and Failed) per second of it.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	PagesPerSecond float64 `json:"pages_per_second"`

	// Failures lists every URL that could not be fetched, and why.
	Failures []crawler.Failure `json:"failures"`
	// NoIndex lists the URLs fetched (and counted in Pages) whose page
	// asked not to be indexed.
	NoIndex []string `json:"noindex"`
	// Skipped counts the links not followed, by reason (robots.txt,
	// nofollow, outside the allowed hosts, over the page or depth limit),
	// each with a few examples.
	Skipped []crawler.Skipped `json:"skipped"`

	// CheckOK is true if every URL was reported exactly once; Check says
	// so, or what went wrong.
	CheckOK bool   `json:"check_ok"`
	Check   string `json:"check"`
}

func newReport(coord *crawler.Coordinator, addr, data string) *Report {
	cs := coord.Stats()
	procs, fetchers := coord.Processes()
	r := &Report{
		Listen: addr, Data: data, Restarts: cs.Restarts,
		StartURLs: coord.StartURLs(), Hosts: coord.Hosts(),
		Pages: cs.Pages, Failed: cs.Failed, Workers: procs, Fetchers: fetchers,
		ProcessesLost: cs.ProcessesLost, LostLeases: cs.LostLeases,
		Reports: cs.Reports, IgnoredReports: cs.Duplicates,
		Leases: cs.Leases, RepeatedLeases: cs.RepeatedLeases, LeasesReassigned: cs.Reassigned,
		LeasesReleased: cs.Released, Retried: cs.Retried,
		Failures: coord.Failures(),
		NoIndex:  append([]string{}, coord.NoIndex()...),
		Skipped:  append([]crawler.Skipped{}, coord.Skipped()...),
	}
	if r.Failures == nil {
		r.Failures = []crawler.Failure{}
	}
	elapsed := coord.Elapsed()
	r.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		r.PagesPerSecond = float64(r.Pages+r.Failed) / elapsed.Seconds()
	}
	if err := coord.Check(); err != nil {
		r.Check = err.Error()
	} else {
		r.CheckOK = true
		r.Check = fmt.Sprintf("every page reported exactly once (%d URLs, no report executed twice)", r.Pages+r.Failed)
	}
	return r
}
