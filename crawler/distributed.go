package crawler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Coordinator is the RPC service at the centre of a distributed crawl. It
// owns a Scheduler (the frontier, the seen set and the leases) behind a
// mutex, and workers call it over any rpc transport:
//
//	Coordinator.Lease(LeaseArgs, *LeaseReply)   // at-least-once: safe to retry
//	Coordinator.Report(ReportArgs, *ReportReply) // at-most-once: never counted twice
//
// Lease is safe to retry because a worker holds one lease at a time: a Lease
// from a worker whose current lease is neither reported nor expired returns
// that same lease again (its first reply was lost, or the request was
// duplicated). A lease that is never reported expires after LeaseTimeout and
// its URL is handed to the next worker that asks. Expired leases are found
// on each Lease call, so the coordinator needs no goroutine of its own.
//
// Report must be called under semantics.AtMostOnce, so that a retried report
// is answered from the rpc server's duplicate table instead of running again;
// the coordinator counts every execution of a (TaskID, Attempt) pair, and
// Stats().ReexecutedReports is non-zero if that guarantee was broken. Of
// several reports for one URL (from a worker whose lease expired, say) the
// Scheduler accepts the first and ignores the others, so each URL is
// reported exactly once.
type Coordinator struct {
	cfg  CoordinatorConfig
	done chan struct{} // closed once the crawl is over

	mu         sync.Mutex // protects following
	sched      *Scheduler
	finished   bool              // done is closed
	tasks      map[uint64]string // URL of every task handed out, by ID
	holding    map[string]Task   // each worker's latest lease, by worker name
	outcomes   map[string]string // accepted reports: URL -> error text ("" for success)
	accepted   map[string]int    // accepted reports per URL
	executions map[reportKey]int // Report executions per (task, attempt)
	stats      CoordinatorStats  // counters the Scheduler does not keep
}

type reportKey struct {
	task    uint64
	attempt int
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// StartURL is where the crawl starts. URLs are compared as strings, so
	// pass a normalised one (see Normalize).
	StartURL string
	// LeaseTimeout is how long a worker has to report a task before it is
	// handed to another worker. Make it comfortably longer than one fetch,
	// retries included, or pages will be fetched twice. Default 30s.
	LeaseTimeout time.Duration
	// PollInterval is the longest a worker that found the frontier empty is
	// told to wait before asking again. Default 10ms.
	PollInterval time.Duration
	// MaxPages bounds the URLs admitted to the crawl; zero means no limit.
	MaxPages int
	// MaxDepth bounds how many links from StartURL are followed; zero means
	// no limit.
	MaxDepth int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of CoordinatorConfig.
const (
	DefaultLeaseTimeout = 30 * time.Second
	DefaultPollInterval = 10 * time.Millisecond
)

// LeaseArgs are the arguments of Coordinator.Lease.
type LeaseArgs struct {
	// Worker names the caller; each worker needs its own name.
	Worker string
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
}

// ReportArgs are the arguments of Coordinator.Report.
type ReportArgs struct {
	// TaskID and URL identify the leased task being reported.
	TaskID uint64
	URL    string
	// Links are the links found on the page.
	Links []string
	// Err, if not empty, says why the page could not be fetched; the URL is
	// then recorded as failed and not handed out again.
	Err string
	// Attempt numbers the worker's separate Report calls for this task,
	// from 1. Retries inside one at-most-once call share an Attempt; the
	// worker starts a new call (and a new Attempt) only after one gave up.
	Attempt int
}

// ReportReply is the answer of Coordinator.Report.
type ReportReply struct {
	// Status says whether the report counted (Accepted), came after another
	// report for the same URL (Duplicate), or named no known task.
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
	// RepeatedLeases counts Lease calls answered with the lease the worker
	// already held (a retry after a lost reply, or a duplicated request).
	RepeatedLeases int
}

// NewCoordinator returns a Coordinator whose frontier holds cfg.StartURL.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if cfg.StartURL == "" {
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sched, err := NewScheduler(cfg.StartURL, SchedulerConfig{
		LeaseTimeout: cfg.LeaseTimeout, MaxPages: cfg.MaxPages, MaxDepth: cfg.MaxDepth})
	if err != nil {
		return nil, err
	}
	return &Coordinator{
		cfg:        cfg,
		done:       make(chan struct{}),
		sched:      sched,
		tasks:      make(map[uint64]string),
		holding:    make(map[string]Task),
		outcomes:   make(map[string]string),
		accepted:   make(map[string]int),
		executions: make(map[reportKey]int),
	}, nil
}

// Lease hands the calling worker a task: the one it already holds if that
// is still current, else the next URL of the frontier. With nothing to hand
// out it sets Wait, or Done once the crawl is over.
func (c *Coordinator) Lease(args LeaseArgs, reply *LeaseReply) error {
	if args.Worker == "" {
		return errors.New("crawler: Lease: empty worker name")
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sched.Done() {
		reply.Done = true
		return nil
	}
	if t, ok := c.holding[args.Worker]; ok && now.Before(t.Deadline) && c.accepted[t.URL] == 0 {
		c.stats.RepeatedLeases++
		reply.Task = t
		return nil
	}
	t, ok := c.sched.Lease(args.Worker, now)
	if !ok {
		reply.Wait = c.cfg.PollInterval
		if next, ok := c.sched.NextDeadline(); ok && next.Sub(now) < reply.Wait {
			reply.Wait = max(next.Sub(now), time.Millisecond)
		}
		return nil
	}
	c.tasks[t.ID] = t.URL
	c.holding[args.Worker] = t
	reply.Task = t
	return nil
}

// Report records the outcome of a leased task: its links on success, or
// that it failed. A report naming a task with another URL is an error.
func (c *Coordinator) Report(args ReportArgs, reply *ReportReply) error {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Reports++
	url, ok := c.tasks[args.TaskID]
	if !ok {
		reply.Status = UnknownTask
		return nil
	}
	if url != args.URL {
		return fmt.Errorf("crawler: report for task %d names %s, but the task is %s", args.TaskID, args.URL, url)
	}
	key := reportKey{task: args.TaskID, attempt: args.Attempt}
	if c.executions[key]++; c.executions[key] > 1 {
		c.stats.ReexecutedReports++
	}
	if args.Err != "" {
		reply.Status = c.sched.Fail(args.TaskID, now)
	} else {
		reply.Status = c.sched.Report(args.TaskID, args.Links, now)
	}
	if reply.Status == Accepted {
		if c.accepted[url]++; c.accepted[url] > 1 {
			c.stats.AcceptedTwice++
		}
		c.outcomes[url] = args.Err
	}
	if !c.finished && c.sched.Done() {
		c.finished = true
		close(c.done)
	}
	return nil
}

// Done returns a channel that is closed when the crawl is over: every
// admitted URL has been reported.
func (c *Coordinator) Done() <-chan struct{} { return c.done }

// Stats returns the counters.
func (c *Coordinator) Stats() CoordinatorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.SchedulerStats = c.sched.Stats()
	return st
}

// Result returns what has been reported so far: the URLs fetched, sorted,
// and the URLs that failed with their error text.
func (c *Coordinator) Result() (fetched []string, failed map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	failed = make(map[string]string)
	for url, msg := range c.outcomes {
		if msg == "" {
			fetched = append(fetched, url)
		} else {
			failed[url] = msg
		}
	}
	sort.Strings(fetched)
	return fetched, failed
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
	if c.stats.AcceptedTwice > 0 {
		errs = append(errs, fmt.Errorf("%d reports accepted for URLs already reported", c.stats.AcceptedTwice))
	}
	if c.stats.ReexecutedReports > 0 {
		errs = append(errs, fmt.Errorf("%d report calls executed more than once", c.stats.ReexecutedReports))
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
	// LeaseErrors and ReportErrors count Lease calls that failed and
	// reports abandoned.
	LeaseErrors, ReportErrors int
}

func (s *WorkerStats) add(o WorkerStats) {
	s.Leases += o.Leases
	s.Fetches += o.Fetches
	s.FetchErrors += o.FetchErrors
	s.Reports += o.Reports
	s.Duplicates += o.Duplicates
	s.ReportResends += o.ReportResends
	s.LeaseErrors += o.LeaseErrors
	s.ReportErrors += o.ReportErrors
}

// Worker tuning. A worker gives up after maxLeaseFailures Lease calls in a
// row have failed (each is itself retried by the at-least-once policy), and
// abandons a report after maxReportCalls at-most-once calls gave up; the
// lease then expires and the URL is handed out again.
const (
	maxLeaseFailures = 20
	maxReportCalls   = 3
	reportTimeout    = 10 * time.Second
	leaseBackoffMin  = 10 * time.Millisecond
	leaseBackoffMax  = 500 * time.Millisecond
)

// RunWorker runs one crawl worker named name until the crawl is over (it
// returns nil), ctx ends (ctx's error) or the coordinator cannot be reached
// (an error). It leases a task from the Coordinator behind client under
// at-least-once semantics, fetches its URL with f (pass a PoliteFetcher: it
// retries failed fetches), and reports the links under at-most-once
// semantics, whatever client's default policy. If ctx ends while it
// fetches, it exits without reporting, like a crashed worker: its lease
// expires and another worker fetches the URL.
func RunWorker(ctx context.Context, client *rpc.Client, f Fetcher, name string) (WorkerStats, error) {
	w := worker{client: client, f: f, name: name,
		leasePolicy: semantics.AtLeastOnce(), reportPolicy: semantics.AtMostOnce()}
	err := w.run(ctx)
	return w.stats, err
}

type worker struct {
	client       *rpc.Client
	f            Fetcher
	name         string
	leasePolicy  semantics.Policy
	reportPolicy semantics.Policy
	stats        WorkerStats
}

func (w *worker) run(ctx context.Context) error {
	backoff, failures := leaseBackoffMin, 0
	for {
		var lr LeaseReply
		err := w.client.Call(ctx, "Coordinator.Lease", LeaseArgs{Worker: w.name}, &lr, rpc.WithSemantics(w.leasePolicy))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, rpc.ErrApplication):
			return fmt.Errorf("crawler: worker %s: lease: %w", w.name, err)
		case err != nil:
			w.stats.LeaseErrors++
			if failures++; failures >= maxLeaseFailures {
				return fmt.Errorf("crawler: worker %s: %d leases failed in a row: %w", w.name, failures, err)
			}
			if err := sleepCtx(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, leaseBackoffMax)
			continue
		}
		backoff, failures = leaseBackoffMin, 0
		if lr.Done {
			return nil
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
		links, err := w.f.Fetch(ctx, lr.Task.URL)
		w.stats.Fetches++
		if ctx.Err() != nil {
			return ctx.Err() // dead mid-lease: the lease expires
		}
		args := ReportArgs{TaskID: lr.Task.ID, URL: lr.Task.URL, Links: links}
		if err != nil {
			w.stats.FetchErrors++
			args.Links, args.Err = nil, err.Error()
		}
		if err := w.report(ctx, args); err != nil {
			return err
		}
	}
}

// report sends args in up to maxReportCalls at-most-once calls. A call that
// gave up may still have run, so a new call (with a new Attempt) may deliver
// a second report for the task: the Scheduler then ignores it.
func (w *worker) report(ctx context.Context, args ReportArgs) error {
	for attempt := 1; ; attempt++ {
		args.Attempt = attempt
		var rr ReportReply
		callCtx, cancel := context.WithTimeout(ctx, reportTimeout)
		err := w.client.Call(callCtx, "Coordinator.Report", args, &rr, rpc.WithSemantics(w.reportPolicy))
		cancel()
		switch {
		case err == nil:
			w.stats.Reports++
			if rr.Status == Duplicate {
				w.stats.Duplicates++
			}
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, rpc.ErrApplication) || attempt >= maxReportCalls:
			// Give up on this task; the lease expires and it is handed out again.
			w.stats.ReportErrors++
			return nil
		}
		w.stats.ReportResends++
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
