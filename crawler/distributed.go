package crawler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

// Coordinator is the RPC service at the centre of a distributed crawl. It
// owns a Scheduler (the frontier, the seen set, the leases and the hosts'
// fetch slots) behind a mutex, and workers call it over any rpc transport:
//
//	Coordinator.Lease(LeaseArgs, *LeaseReply)   // at-least-once: safe to retry
//	Coordinator.Report(ReportArgs, *ReportReply) // at-most-once: never counted twice
//	Coordinator.Release(LeaseArgs, *ReleaseReply) // a stopping worker gives its lease back
//
// Lease is safe to retry because a worker holds one lease at a time: a Lease
// from a worker whose current lease is neither reported nor expired returns
// that same lease again (its first reply was lost, or the request was
// duplicated); see Scheduler. A lease that is never reported expires after
// LeaseTimeout and its URL is handed to the next worker that asks. Expired
// leases are found on each Lease call, so the coordinator needs no goroutine
// of its own.
//
// Report must be called under semantics.AtMostOnce, so that a retried report
// is answered from the rpc server's duplicate table instead of running again;
// the coordinator counts every execution of a (TaskID, Attempt) pair, and
// Stats().ReexecutedReports is non-zero if that guarantee was broken. Of
// several reports for one URL (from a worker whose lease expired, say) the
// Scheduler accepts the first and ignores the others, so each URL is
// reported exactly once.
//
// With a CrawlStore (CoordinatorConfig.Store) every call's changes are
// committed before it answers, and a Coordinator made on the same store
// after a crash resumes the crawl.
type Coordinator struct {
	cfg     CoordinatorConfig
	done    chan struct{} // closed once the crawl is over or the store failed
	started time.Time     // when this Coordinator was made
	signal  chan struct{} // a Lease answered Done; size 1

	mu          sync.Mutex // protects following
	sched       *Scheduler
	finished    bool              // done is closed
	broken      error             // the store failed: every call is refused
	accepted    map[string]int    // accepted reports per URL
	executions  map[reportKey]int // Report executions per (task, attempt)
	record      coordRecord       // counters the Scheduler does not keep, and what is stored with them
	workers     map[string]*workerSeen
	processes   map[string]*processSeen // by LeaseArgs.Process and HeartbeatArgs.Process
	unrecorded  map[string]bool         // processes counted past MaxRecordedProcesses, bounded
	recordDirty bool                    // record changed since it was last queued for the store
	pending     []pendingWrite          // writes queued for the store, in order
	queued      uint64                  // sequence number of the last write queued
	durable     uint64                  // sequence number of the last write in the store
	saveHook    func()                  // tests: called before each commit's write

	commitMu  sync.Mutex // serialises commits; protects following
	committed uint64     // sequence number of the last write in the store
	commitErr error      // a commit failed
}

type reportKey struct {
	task    uint64
	attempt int
}

type workerSeen struct {
	last time.Time // its last Lease
	told bool      // a Lease was answered Done
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// StartURL is where the crawl starts. URLs are compared as strings, so
	// pass a normalised one (see Normalize).
	StartURL string
	// StartURLs are more start URLs (all of them are crawled, with
	// StartURL if it is set).
	StartURLs []string
	// Hosts lists the hosts (host[:port], or URLs: see HostKey) the crawl
	// may enter besides the start URLs' hosts and their www/apex variants:
	// links to other hosts are dropped, and every LeaseReply names them, so
	// that workers allow them too. If Hosts is empty, no host is dropped
	// here (the workers' fetcher decides).
	Hosts []string
	// LeaseTimeout is how long a worker has to report a task before it is
	// handed to another worker. Make it comfortably longer than one fetch,
	// retries included, or pages will be fetched twice. Default 30s.
	LeaseTimeout time.Duration
	// PollInterval is the longest a worker that found nothing to fetch is
	// told to wait before asking again. Default 10ms.
	PollInterval time.Duration
	// MaxPages bounds the URLs admitted to the crawl; zero means no limit.
	MaxPages int
	// MaxDepth bounds how many links from StartURL are followed; zero means
	// no limit.
	MaxDepth int
	// HostLimit, HostDelay, MaxHostDelay, MaxRetries and RetryDelay are
	// the cluster-wide politeness of SchedulerConfig: fetch slots per host,
	// the least time between two leases of a host, and how often a URL that
	// failed transiently is queued again. Zero HostLimit means no slots.
	HostLimit    int
	HostDelay    time.Duration
	MaxHostDelay time.Duration
	MaxRetries   int
	RetryDelay   time.Duration
	// Store, if not nil, keeps the crawl durable: a Coordinator made on a
	// store that holds a crawl resumes it (its start URLs, if given, must
	// be the stored ones). The caller closes it after the Coordinator is
	// no longer served.
	Store *CrawlStore
	// ProcessTimeout is how long a worker process (LeaseArgs.Process) may
	// stay silent, its heartbeats included, before the leases of all its
	// workers are freed: a process killed, or cut off from the
	// coordinator, holds its hosts' slots this long instead of
	// LeaseTimeout. Default DefaultProcessTimeout.
	ProcessTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of CoordinatorConfig.
const (
	DefaultLeaseTimeout   = 30 * time.Second
	DefaultPollInterval   = 10 * time.Millisecond
	DefaultProcessTimeout = 1500 * time.Millisecond
)

// LeaseArgs are the arguments of Coordinator.Lease.
type LeaseArgs struct {
	// Worker names the caller; each worker needs its own name, unique in
	// the cluster (see NewWorkerName).
	Worker string
	// Process, if not empty, names the worker process the caller runs in
	// (unique in the cluster, like Worker). The process must then call
	// Coordinator.Heartbeat as its HeartbeatReply asks: once it has been
	// silent for CoordinatorConfig.ProcessTimeout, the leases of all its
	// workers are freed at once (see Heartbeat).
	Process string
}

// LeaseReply is the answer of Coordinator.Lease: a Task, or a Wait, or Done.
type LeaseReply struct {
	// Task is the leased task; its ID is zero if there was none.
	Task Task
	// Wait, when there is no task but the crawl is not over, is how long to
	// wait before asking again.
	Wait time.Duration
	// Done means the crawl is over: the worker should exit.
	Done bool
	// Hosts are the hosts the crawl may enter (see CoordinatorConfig.Hosts);
	// empty if the coordinator drops none.
	Hosts []string
}

// ReportArgs are the arguments of Coordinator.Report.
type ReportArgs struct {
	// TaskID and URL identify the leased task being reported.
	TaskID uint64
	URL    string
	// Links are the links found on the page.
	Links []string
	// NoIndex, on success, means the page asked not to be indexed
	// (Page.NoIndex): its links are followed, but the coordinator lists it
	// under NoIndex instead of among the fetched pages.
	NoIndex bool
	// Err, if not empty, says why the page could not be fetched; the URL is
	// then recorded as failed and not handed out again, unless Retry is set.
	Err string
	// Retry means the failure was transient (a 503, a lost connection): the
	// coordinator queues the URL again, up to its MaxRetries.
	Retry bool
	// HostWide, with Retry, means the failure was the host's, not the URL's
	// (its robots.txt could not be read): the host's other URLs wait as
	// long as this one before they are leased.
	HostWide bool
	// Pace, if not nil, is what the worker learned about the URL's host.
	Pace *HostPace
	// Skipped, on success, lists links of the page that the worker's
	// fetcher did not follow, and why (Page.Skipped); at most
	// MaxSkippedPerPage are counted.
	Skipped []SkippedLink
	// Attempt numbers the worker's separate Report calls for this task,
	// from 1. Retries inside one at-most-once call share an Attempt; the
	// worker starts a new call (and a new Attempt) only after one gave up.
	Attempt int
}

// ReportReply is the answer of Coordinator.Report.
type ReportReply struct {
	// Status says whether the report counted (Accepted), came after another
	// report for the same URL (Duplicate), named no known task, or queued
	// the URL again (Requeued).
	Status ReportStatus
}

// CoordinatorStats are a Coordinator's counters.
type CoordinatorStats struct {
	SchedulerStats
	// Reports counts executions of Report.
	Reports int
	// ReexecutedReports counts executions of Report for a (TaskID, Attempt)
	// that had already run: zero unless at-most-once delivery failed.
	ReexecutedReports int
	// AcceptedTwice counts reports accepted for a URL that already had one:
	// zero unless the Scheduler is wrong.
	AcceptedTwice int
	// Restarts counts the times this crawl was resumed from its store
	// before it was over (a finished crawl opened again is not resumed).
	Restarts int
	// ProcessesLost counts the times a worker process fell silent for
	// ProcessTimeout; LostLeases counts the leases then freed.
	ProcessesLost, LostLeases int
}

// coordCounters are the counters a Coordinator keeps itself.
type coordCounters struct {
	Reports, ReexecutedReports, AcceptedTwice int
	ProcessesLost, LostLeases                 int
}

// NewCoordinator returns a Coordinator whose frontier holds the start URLs,
// or, if cfg.Store holds a crawl, the Coordinator of that crawl as it was
// last written.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	starts := cfg.StartURLs
	if cfg.StartURL != "" {
		starts = append([]string{cfg.StartURL}, starts...)
	}
	if len(starts) == 0 && cfg.Store == nil {
		return nil, errors.New("crawler: CoordinatorConfig.StartURL is empty")
	}
	if cfg.LeaseTimeout == 0 {
		cfg.LeaseTimeout = DefaultLeaseTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("crawler: CoordinatorConfig.PollInterval %v is negative", cfg.PollInterval)
	}
	if cfg.ProcessTimeout == 0 {
		cfg.ProcessTimeout = DefaultProcessTimeout
	}
	if cfg.ProcessTimeout < 0 {
		return nil, fmt.Errorf("crawler: CoordinatorConfig.ProcessTimeout %v is negative", cfg.ProcessTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hosts, err := hostKeys(cfg.Hosts, starts)
	if err != nil {
		return nil, err
	}
	scfg := SchedulerConfig{LeaseTimeout: cfg.LeaseTimeout, MaxPages: cfg.MaxPages, MaxDepth: cfg.MaxDepth,
		Hosts: hosts, HostLimit: cfg.HostLimit, HostDelay: cfg.HostDelay, MaxHostDelay: cfg.MaxHostDelay,
		MaxRetries: cfg.MaxRetries, RetryDelay: cfg.RetryDelay}
	c := &Coordinator{
		cfg:        cfg,
		done:       make(chan struct{}),
		started:    cfg.Now(),
		signal:     make(chan struct{}, 1),
		accepted:   make(map[string]int),
		executions: make(map[reportKey]int),
		workers:    make(map[string]*workerSeen),
		processes:  make(map[string]*processSeen),
	}
	if cfg.Store != nil {
		saved, ok, err := cfg.Store.load()
		if err != nil {
			return nil, err
		}
		if ok {
			if len(starts) > 0 && !slices.Equal(starts, saved.coord.StartURLs) {
				return nil, fmt.Errorf("crawler: %s holds a crawl from %v, not %v: pass the same start URLs, or none, or use a new store",
					cfg.Store.Path(), saved.coord.StartURLs, starts)
			}
			if len(cfg.Hosts) > 0 && !slices.Equal(cfg.Hosts, saved.coord.Hosts) {
				return nil, fmt.Errorf("crawler: %s holds a crawl of hosts %v, not %v", cfg.Store.Path(), saved.coord.Hosts, cfg.Hosts)
			}
			if scfg.Hosts == nil && len(saved.coord.Hosts) > 0 {
				if scfg.Hosts, err = hostKeys(saved.coord.Hosts, saved.coord.StartURLs); err != nil {
					return nil, err
				}
			}
			sched, err := restoreScheduler(scfg, saved.urls, saved.hosts, saved.sched)
			if err != nil {
				return nil, fmt.Errorf("%w (in %s)", err, cfg.Store.Path())
			}
			c.sched, c.record, c.executions = sched, saved.coord, saved.reports
			sched.skipped = c.tallySkipped
			// A crawl is restarted if it was not over, or over but not
			// reported (its coordinator died first); a crawl reported is
			// only read again.
			restarted := !sched.Done() || !c.record.Reported
			if restarted {
				c.record.Restarts++
			}
			for _, u := range append(sched.Fetched(), sched.NoIndex()...) {
				c.accepted[u] = 1
			}
			for _, f := range sched.Failures() {
				c.accepted[f.URL] = 1
			}
			c.adoptProcesses()
			sched.startJournal()
			sched.takeChanges() // everything is stored already
			if restarted {
				if err := cfg.Store.save([]pendingWrite{{coord: c.record}}); err != nil {
					return nil, err
				}
			}
			c.checkFinished()
			return c, nil
		}
		if len(starts) == 0 {
			return nil, fmt.Errorf("crawler: %s holds no crawl yet: give a start URL", cfg.Store.Path())
		}
	}
	sched, err := NewSchedulerURLs(starts, scfg)
	if err != nil {
		return nil, err
	}
	c.sched = sched
	sched.skipped = c.tallySkipped
	c.record = coordRecord{StartURLs: starts, Hosts: cfg.Hosts}
	if cfg.Store != nil {
		sched.startJournal()
		if err := cfg.Store.save([]pendingWrite{{changes: sched.takeChanges(), coord: c.record}}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// hostKeys returns the HostKeys of hosts and of the start URLs' hosts; nil
// if hosts is empty (no host is dropped).
func hostKeys(hosts, starts []string) ([]string, error) {
	if len(hosts) == 0 {
		return nil, nil
	}
	var keys []string
	for _, h := range append(slices.Clone(hosts), starts...) {
		k, err := HostKey(h)
		if err != nil {
			return nil, fmt.Errorf("crawler: host %q: %w", h, err)
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// persist queues what the Scheduler changed, with the coordinator's record
// (and report's execution count), for the store, and returns its sequence
// number for commit; zero if there is no store or nothing to write. c.mu
// is held.
func (c *Coordinator) persist(report *reportKey) uint64 {
	if c.cfg.Store == nil {
		return 0
	}
	ch := c.sched.takeChanges()
	if ch.empty() && report == nil && !c.recordDirty {
		return 0 // an idle poll: nothing to write
	}
	c.recordDirty = false
	rec := c.record
	rec.Processes = slices.Clone(rec.Processes) // recordProcess changes them in place
	rec.Skipped = rec.Skipped.sorted()          // and tallySkipped these
	rec.Elapsed = c.elapsedLocked()
	c.queued++
	w := pendingWrite{seq: c.queued, changes: ch, coord: rec}
	if report != nil {
		w.report, w.executions = report, c.executions[*report]
	}
	c.pending = append(c.pending, w)
	return c.queued
}

// commit returns once the write seq (see persist) is in the store. Writes
// are committed in the order they were queued, several in one transaction
// when calls arrive together (group commit): the caller whose write is not
// in yet commits everything queued. c.mu is not held. A failed commit breaks
// the coordinator: its memory is ahead of its store, so it refuses every
// later call, and a restart resumes from the last commit.
func (c *Coordinator) commit(seq uint64) error {
	if seq == 0 {
		return nil
	}
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	if c.committed >= seq {
		return nil
	}
	if c.commitErr != nil {
		return c.commitErr
	}
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	hook := c.saveHook
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err := c.cfg.Store.save(batch); err != nil {
		c.commitErr = fmt.Errorf("%s: %w", coordinatorStopped, err)
		c.mu.Lock()
		c.broken = err
		c.finish()
		c.mu.Unlock()
		return c.commitErr
	}
	c.committed = batch[len(batch)-1].seq
	c.mu.Lock()
	c.durable = c.committed
	c.checkFinished()
	c.mu.Unlock()
	return nil
}

// coordinatorStopped starts the error of every call a Coordinator whose
// store failed refuses, or could not store. A worker takes it for a
// coordinator that is down, to be restarted on its store (which has none of
// the refused calls), not for a refusal: it waits, and sends its report
// again.
const coordinatorStopped = "crawler: coordinator stopped"

// coordinatorDown reports whether err, from a Coordinator call, says the
// coordinator stopped (see coordinatorStopped).
func coordinatorDown(err error) bool {
	return err != nil && strings.Contains(err.Error(), coordinatorStopped)
}

// pendingWrite is one call's changes, queued for the store.
type pendingWrite struct {
	seq        uint64
	changes    changes
	coord      coordRecord
	report     *reportKey // nil if the call was no report
	executions int        // report's executions so far
}

// elapsedLocked is the crawl's running time over every start on its store.
func (c *Coordinator) elapsedLocked() time.Duration {
	return c.record.Elapsed + c.cfg.Now().Sub(c.started)
}

func (c *Coordinator) finish() {
	if !c.finished {
		c.finished = true
		close(c.done)
	}
}

// checkFinished ends the crawl if the Scheduler is done and every write
// queued is in the store (not merely taken by a commit still writing): the
// crawl is over only once its store says so. c.mu is held.
func (c *Coordinator) checkFinished() {
	if c.sched.Done() && c.durable == c.queued {
		c.finish()
	}
}

// Lease hands the calling worker a task: the one it already holds if that
// is still current, else the next URL of the frontier whose host has a free
// slot. With nothing to hand out it sets Wait, or Done once the crawl is
// over.
func (c *Coordinator) Lease(args LeaseArgs, reply *LeaseReply) error {
	if args.Worker == "" {
		return errors.New("crawler: Lease: empty worker name")
	}
	if err := checkProcessName(args.Process); err != nil {
		return err
	}
	now := c.cfg.Now()
	c.mu.Lock()
	if c.broken != nil {
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", coordinatorStopped, c.broken)
	}
	w := c.workers[args.Worker]
	if w == nil {
		w = &workerSeen{}
		c.workers[args.Worker] = w
	}
	w.last = now
	c.sweepProcesses(now)
	if args.Process != "" {
		c.heardFrom(args.Process, args.Worker, 0, now)
	}
	if c.finished {
		reply.Done = true
		w.told = true
		c.mu.Unlock()
		select {
		case c.signal <- struct{}{}:
		default:
		}
		return nil
	}
	t, ok := c.sched.Lease(args.Worker, now)
	if ok && args.Process != "" {
		c.sched.setLeaseProcess(t.ID, args.Process)
	}
	seq := c.persist(nil)
	reply.Hosts = c.sched.cfg.Hosts
	if ok {
		reply.Task = t
	} else {
		reply.Wait = c.cfg.PollInterval
		if next, ok := c.sched.NextEvent(now); ok && next.Sub(now) < reply.Wait {
			reply.Wait = max(next.Sub(now), time.Millisecond)
		}
	}
	c.mu.Unlock()
	return c.commit(seq) // the lease is answered only once it is stored
}

// ReleaseReply is the answer of Coordinator.Release.
type ReleaseReply struct {
	// Released is true if the worker held a lease, now given back.
	Released bool
}

// Release gives back the calling worker's lease, if it holds one: its URL,
// unless another worker reported it meanwhile, goes back to the frontier at
// once instead of waiting for the lease to expire, and its host slot is
// free. A worker that stops before reporting (it was
// interrupted) calls it; it is safe to retry (at-least-once), as long as
// the worker asks for no new lease under the same name.
func (c *Coordinator) Release(args LeaseArgs, reply *ReleaseReply) error {
	if args.Worker == "" {
		return errors.New("crawler: Release: empty worker name")
	}
	c.mu.Lock()
	if c.broken != nil {
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", coordinatorStopped, c.broken)
	}
	reply.Released = c.sched.Release(args.Worker)
	seq := c.persist(nil)
	c.mu.Unlock()
	return c.commit(seq)
}

// Report records the outcome of a leased task: its links on success, that
// it failed, or that it should be tried again. A report naming a task with
// another URL is an error.
func (c *Coordinator) Report(args ReportArgs, reply *ReportReply) error {
	seq, err := c.report(args, reply)
	if err != nil {
		return err
	}
	if err := c.commit(seq); err != nil {
		return err
	}
	c.mu.Lock()
	c.checkFinished()
	c.mu.Unlock()
	return nil
}

func (c *Coordinator) report(args ReportArgs, reply *ReportReply) (uint64, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return 0, fmt.Errorf("%s: %w", coordinatorStopped, c.broken)
	}
	c.record.Counters.Reports++
	url, ok := c.sched.TaskURL(args.TaskID)
	if !ok {
		reply.Status = UnknownTask
		return 0, nil
	}
	if url != args.URL {
		return 0, fmt.Errorf("crawler: report for task %d names %s, but the task is %s", args.TaskID, args.URL, url)
	}
	key := reportKey{task: args.TaskID, attempt: args.Attempt}
	if c.executions[key]++; c.executions[key] > 1 {
		c.record.Counters.ReexecutedReports++
	}
	if args.Pace != nil {
		c.sched.Pace(hostOf(url), *args.Pace, now)
	}
	if args.Err == "" && c.sched.urls[url].phase != stateDone {
		// Accepted below: the links its worker did not follow count once.
		for _, sk := range args.Skipped[:min(len(args.Skipped), MaxSkippedPerPage)] {
			if validSkipReason(sk.Reason) {
				c.tallySkipped(sk.URL, sk.Reason)
			}
		}
	}
	switch {
	case args.Err == "" && args.NoIndex:
		reply.Status = c.sched.ReportNoIndex(args.TaskID, args.Links, now)
	case args.Err == "":
		reply.Status = c.sched.Report(args.TaskID, args.Links, now)
	case args.Retry:
		var wait time.Duration
		if args.Pace != nil {
			wait = args.Pace.Wait
		}
		reply.Status = c.sched.Retry(args.TaskID, args.Err, wait, now)
		if args.HostWide && reply.Status == Requeued {
			c.sched.holdHost(url)
		}
	default:
		reply.Status = c.sched.FailWith(args.TaskID, args.Err, now)
	}
	if reply.Status == Accepted {
		if c.accepted[url]++; c.accepted[url] > 1 {
			c.record.Counters.AcceptedTwice++
		}
	}
	return c.persist(&key), nil
}

// tallySkipped counts a link not followed. c.mu is held.
func (c *Coordinator) tallySkipped(url, reason string) {
	c.record.Skipped.add(url, reason)
	c.recordDirty = true
}

// Skipped returns the links the crawl did not follow, counted by reason
// (robots.txt, nofollow, hosts, limits), with a few examples of each; over
// every start on its store.
func (c *Coordinator) Skipped() []Skipped {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.record.Skipped.sorted()
}

// MarkReported records that the finished crawl's report was made, so that
// a coordinator opening its store again does not count a restart. It does
// nothing if the crawl is not over or there is no store.
func (c *Coordinator) MarkReported() error {
	c.mu.Lock()
	if !c.finished || c.broken != nil || c.record.Reported || c.cfg.Store == nil {
		c.mu.Unlock()
		return nil
	}
	c.record.Reported = true
	c.recordDirty = true
	seq := c.persist(nil)
	c.mu.Unlock()
	return c.commit(seq)
}

// Done returns a channel that is closed when the crawl is over (every
// admitted URL has been reported) or the coordinator's store failed (see
// Err).
func (c *Coordinator) Done() <-chan struct{} { return c.done }

// Err returns why the coordinator stopped serving, if its store failed.
func (c *Coordinator) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// WaitWorkersTold waits, once the crawl is over, until every worker that
// called Lease within the last quiet has been told so, or ctx ends. A
// worker not heard from for quiet is taken for gone.
func (c *Coordinator) WaitWorkersTold(ctx context.Context, quiet time.Duration) error {
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		c.mu.Lock()
		now := c.cfg.Now()
		waiting := false
		var soonest time.Duration
		for _, w := range c.workers {
			if age := now.Sub(w.last); !w.told && age < quiet {
				if !waiting || quiet-age < soonest {
					soonest = quiet - age
				}
				waiting = true
			}
		}
		c.mu.Unlock()
		if !waiting {
			return nil
		}
		t := time.NewTimer(soonest)
		select {
		case <-c.signal:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// Workers returns the names of the workers that called Lease since this
// Coordinator was made, sorted.
func (c *Coordinator) Workers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.workers))
}

// Stats returns the counters.
func (c *Coordinator) Stats() CoordinatorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.record.Counters
	return CoordinatorStats{SchedulerStats: c.sched.Stats(), Reports: k.Reports,
		ReexecutedReports: k.ReexecutedReports, AcceptedTwice: k.AcceptedTwice, Restarts: c.record.Restarts,
		ProcessesLost: k.ProcessesLost, LostLeases: k.LostLeases}
}

// Elapsed returns how long the crawl has run, over every start on its
// store.
func (c *Coordinator) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.elapsedLocked()
}

// StartURLs returns the crawl's start URLs (from the store, on a resumed
// crawl).
func (c *Coordinator) StartURLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.record.StartURLs)
}

// Result returns what has been reported so far: the URLs fetched, sorted
// (those reported NoIndex left out: see NoIndex), and the URLs that failed
// with their error text.
func (c *Coordinator) Result() (fetched []string, failed map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	failed = make(map[string]string)
	for _, f := range c.sched.Failures() {
		failed[f.URL] = f.Reason
	}
	return c.sched.Fetched(), failed
}

// NoIndex returns the URLs reported fetched whose page asked not to be
// indexed (ReportArgs.NoIndex), sorted.
func (c *Coordinator) NoIndex() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sched.NoIndex()
}

// Hosts returns the hosts the crawl may enter besides its start URLs' (see
// CoordinatorConfig.Hosts; from the store, on a resumed crawl).
func (c *Coordinator) Hosts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.record.Hosts)
}

// Failures returns the URLs that could not be fetched and why, sorted by
// URL.
func (c *Coordinator) Failures() []Failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sched.Failures()
}

// HostsInFlight returns, for each host with leases out, how many.
func (c *Coordinator) HostsInFlight() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sched.HostsInFlight()
}

// Check reports, as an error, any URL reported other than exactly once:
// a crawl that is not over, a URL accepted twice, or a report executed
// twice (at-most-once broken; the Scheduler then ignored the copy, but it
// should never have run).
func (c *Coordinator) Check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if !c.sched.Done() {
		st := c.sched.Stats()
		errs = append(errs, fmt.Errorf("crawl not over: %d URLs queued, %d leased", st.Queued, st.Leased))
	}
	k := c.record.Counters
	if k.AcceptedTwice > 0 {
		errs = append(errs, fmt.Errorf("%d reports accepted for URLs already reported", k.AcceptedTwice))
	}
	if k.ReexecutedReports > 0 {
		errs = append(errs, fmt.Errorf("%d report calls executed more than once", k.ReexecutedReports))
	}
	st := c.sched.Stats()
	if n := st.Pages + st.Failed; n != len(c.accepted) {
		errs = append(errs, fmt.Errorf("scheduler counts %d URLs done, coordinator %d", n, len(c.accepted)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("crawler: not every URL reported exactly once: %w", err)
	}
	return nil
}

// WorkerStats are what one worker did.
type WorkerStats struct {
	// Leases counts the tasks it was handed (a lease handed again after a
	// lost reply included).
	Leases int
	// Fetches counts its Fetch calls; FetchErrors those that failed.
	Fetches, FetchErrors int
	// Reports counts reports the coordinator answered; Duplicates those it
	// answered Duplicate (the URL had been reported by another worker).
	Reports, Duplicates int
	// ReportResends counts new Report calls made after one gave up.
	ReportResends int
	// LeaseErrors counts Lease calls that failed (each after its own
	// retries); ReportErrors counts reports given up on, after which the
	// worker stops (its lease expires and another worker fetches the URL).
	LeaseErrors, ReportErrors int
}

// Add adds o's counts to s, as when summing the workers of a crawl.
func (s *WorkerStats) Add(o WorkerStats) {
	s.Leases += o.Leases
	s.Fetches += o.Fetches
	s.FetchErrors += o.FetchErrors
	s.Reports += o.Reports
	s.Duplicates += o.Duplicates
	s.ReportResends += o.ReportResends
	s.LeaseErrors += o.LeaseErrors
	s.ReportErrors += o.ReportErrors
}

// Worker tuning. A worker keeps trying to reach the coordinator (a Lease,
// or a Report) for its Patience since the coordinator last answered, waiting
// between failed Lease calls with a backoff from leaseBackoffMin to
// leaseBackoffMax.
const (
	// DefaultPatience is WorkerConfig.Patience's default.
	DefaultPatience = 60 * time.Second
	leaseBackoffMin = 10 * time.Millisecond
	leaseBackoffMax = time.Second
)

// WorkerConfig configures RunWorkerWith.
type WorkerConfig struct {
	// Name identifies the worker to the coordinator; it must be unique in
	// the cluster (NewWorkerName makes one) and not empty.
	Name string
	// Process, if not empty, names the worker process this worker runs in
	// (see LeaseArgs.Process); the process must then send heartbeats
	// (CoordinatorClient.Heartbeat), or its workers lose their leases.
	Process string
	// Patience is how long the worker keeps trying to reach the
	// coordinator, since it last answered, before it gives up: long enough
	// for a coordinator to be restarted. Default DefaultPatience.
	Patience time.Duration
	// RetryTransient makes the worker report a fetch that failed with a
	// transient error (Retryable: a 503, a lost connection; or its host's
	// robots.txt could not be read, ErrRobotsUnavailable) as one to retry,
	// so that the coordinator queues it again, after its own backoff and
	// the host's Retry-After, which then hold for every worker. Use it with
	// a fetcher that does not retry itself (Config.MaxRetries 0).
	RetryTransient bool
}

// NewWorkerName returns a worker name made of label and a random suffix, so
// that two workers started with the same label are still told apart.
func NewWorkerName(label string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	if label == "" {
		label = "worker"
	}
	return label + "-" + hex.EncodeToString(b[:])
}

// hostAllower is implemented by fetchers that can be told which hosts links
// may lead to (PoliteFetcher).
type hostAllower interface {
	AllowHosts(hosts ...string) error
}

// hostPacer is implemented by fetchers that know when a host may next be
// requested (PoliteFetcher).
type hostPacer interface {
	HostPacing(host string) (next time.Time, inFlightLimit int)
}

// RunWorker runs one crawl worker named name until the crawl is over (it
// returns nil), ctx ends (ctx's error) or the coordinator cannot be reached
// (an error); see RunWorkerWith.
func RunWorker(ctx context.Context, client *rpc.Client, f Fetcher, name string) (WorkerStats, error) {
	return RunWorkerWith(ctx, client, f, WorkerConfig{Name: name})
}

// RunWorkerWith runs one crawl worker until the crawl is over (it returns
// nil), ctx ends (ctx's error) or the coordinator could not be reached for
// cfg.Patience (an error). It leases a task from the Coordinator behind
// client under at-least-once semantics, fetches its URL with f (pass a
// PoliteFetcher: it obeys robots.txt), and reports the links under
// at-most-once semantics, whatever client's default policy; a coordinator
// restarting meanwhile, or refusing calls because its store failed (it is
// to be restarted on it), is waited for. If f tells when a host may next be
// requested (as PoliteFetcher's HostPacing does), the report carries it, so
// that the coordinator paces the host for every worker. If ctx ends while
// it fetches, it exits without reporting, like a crashed worker: its lease
// expires and another worker fetches the URL.
func RunWorkerWith(ctx context.Context, client *rpc.Client, f Fetcher, cfg WorkerConfig) (WorkerStats, error) {
	if cfg.Name == "" {
		return WorkerStats{}, errors.New("crawler: WorkerConfig.Name is empty")
	}
	if cfg.Patience < 0 {
		return WorkerStats{}, fmt.Errorf("crawler: WorkerConfig.Patience %v is negative", cfg.Patience)
	}
	if cfg.Patience == 0 {
		cfg.Patience = DefaultPatience
	}
	w := worker{coord: NewCoordinatorClient(client), f: f, cfg: cfg}
	err := w.run(ctx)
	return w.stats, err
}

type worker struct {
	coord  *CoordinatorClient
	f      Fetcher
	cfg    WorkerConfig
	stats  WorkerStats
	lastOK time.Time // the coordinator's last answer
	hosts  []string  // the hosts last passed to the fetcher's AllowHosts
}

func (w *worker) patienceLeft() time.Duration { return w.cfg.Patience - time.Since(w.lastOK) }

func (w *worker) run(ctx context.Context) error {
	backoff := leaseBackoffMin
	w.lastOK = time.Now()
	for {
		callCtx, cancel := context.WithTimeout(ctx, w.patienceLeft())
		lr, err := w.coord.Lease(callCtx, LeaseArgs{Worker: w.cfg.Name, Process: w.cfg.Process})
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, rpc.ErrApplication) && !coordinatorDown(err):
			return fmt.Errorf("crawler: worker %s: lease: %w", w.cfg.Name, err)
		case err != nil:
			w.stats.LeaseErrors++
			if w.patienceLeft() <= 0 {
				return fmt.Errorf("crawler: worker %s: no answer from the coordinator for %v: %w", w.cfg.Name, w.cfg.Patience, err)
			}
			if err := sleepCtx(ctx, min(backoff, w.patienceLeft())); err != nil {
				return err
			}
			backoff = min(2*backoff, leaseBackoffMax)
			continue
		}
		backoff, w.lastOK = leaseBackoffMin, time.Now()
		if lr.Done {
			return nil
		}
		if ha, ok := w.f.(hostAllower); ok && len(lr.Hosts) > 0 && !slices.Equal(lr.Hosts, w.hosts) {
			if err := ha.AllowHosts(lr.Hosts...); err != nil {
				return fmt.Errorf("crawler: worker %s: %w", w.cfg.Name, err)
			}
			w.hosts = slices.Clone(lr.Hosts)
		}
		if lr.Task.ID == 0 {
			wait := lr.Wait
			if wait <= 0 {
				wait = DefaultPollInterval
			}
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
			continue
		}
		w.stats.Leases++
		args := w.fetch(ctx, lr.Task)
		if ctx.Err() != nil {
			return ctx.Err() // dead mid-lease: the lease expires
		}
		if err := w.report(ctx, args); err != nil {
			return err
		}
	}
}

// fetch fetches t's URL and returns the report to send.
func (w *worker) fetch(ctx context.Context, t Task) ReportArgs {
	start := time.Now()
	page, err := fetchWhole(ctx, w.f, t.URL)
	w.stats.Fetches++
	args := ReportArgs{TaskID: t.ID, URL: t.URL}
	if err == nil {
		args.Links, args.NoIndex = page.Links, page.NoIndex
		args.Skipped = page.Skipped[:min(len(page.Skipped), MaxSkippedPerPage)]
	}
	var retryAfter time.Duration
	if err != nil {
		w.stats.FetchErrors++
		args.Err = err.Error()
		// A host this process holds back (Retry-After) may be fetched later:
		// the coordinator holds it back for every worker meanwhile. So may
		// a URL whose host's robots.txt could not be read for a transient
		// reason: the fetcher reads it again on the next try.
		args.Retry = w.cfg.RetryTransient && (Retryable(err) || errors.Is(err, ErrHostBackingOff) ||
			errors.Is(err, ErrRobotsUnavailable))
		args.HostWide = errors.Is(err, ErrRobotsUnavailable)
		var he *HTTPError
		if errors.As(err, &he) {
			retryAfter = he.RetryAfter
		}
	}
	if hp, ok := w.f.(hostPacer); ok {
		pace := &HostPace{Wait: retryAfter}
		// next is no earlier than HostPacing's own now: it holds the host
		// back only if it is after the clock read once it returned.
		next, _ := hp.HostPacing(t.URL)
		if end := time.Now(); next.After(end) {
			pace.Wait = max(pace.Wait, next.Sub(end))
			if retryAfter == 0 {
				// The host's interval holds its next request back beyond
				// this fetch: from this request's start to then is (at
				// least) its Crawl-delay.
				pace.Delay = next.Sub(start)
			}
		}
		args.Pace = pace
	} else if retryAfter > 0 {
		args.Pace = &HostPace{Wait: retryAfter}
	}
	return args
}

// report sends args in at-most-once calls until the coordinator answers or
// the worker's patience runs out. A call that gave up may still have run
// (the coordinator restarted, say), so a new call (with a new Attempt) may
// deliver a second report for the task: the Scheduler then ignores it.
func (w *worker) report(ctx context.Context, args ReportArgs) error {
	backoff := leaseBackoffMin
	for attempt := 1; ; attempt++ {
		args.Attempt = attempt
		callCtx, cancel := context.WithTimeout(ctx, max(w.patienceLeft(), time.Millisecond))
		rr, err := w.coord.Report(callCtx, args)
		cancel()
		switch {
		case err == nil:
			w.lastOK = time.Now()
			w.stats.Reports++
			if rr.Status == Duplicate {
				w.stats.Duplicates++
			}
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, rpc.ErrApplication) && !coordinatorDown(err):
			w.stats.ReportErrors++
			return fmt.Errorf("crawler: worker %s: report: %w", w.cfg.Name, err)
		case w.patienceLeft() <= 0:
			w.stats.ReportErrors++
			return fmt.Errorf("crawler: worker %s: no answer from the coordinator for %v: %w", w.cfg.Name, w.cfg.Patience, err)
		}
		w.stats.ReportResends++
		if err := sleepCtx(ctx, min(backoff, max(w.patienceLeft(), time.Millisecond))); err != nil {
			return err
		}
		backoff = min(2*backoff, leaseBackoffMax)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
