package crawler

import (
	"fmt"
	"slices"
	"time"
)

// Scheduler is the coordinator's state for a distributed crawl: the
// frontier of URLs to fetch, the seen set, and the leases handed to workers.
// It is a pure state machine: no goroutines, no network and no clock of its
// own (every method that needs the time takes it as now), so tests drive it
// step by step. It is not safe for concurrent use; the coordinator calls it
// from one goroutine or under its own mutex.
//
// A worker Leases a Task, fetches its URL and Reports the links it found (or
// Fails it). A lease that is not reported by its deadline expires: the URL
// goes back to the frontier and the next Lease hands it out again under a
// new task ID ("reassigned"). Whichever report for a URL arrives first is
// accepted, even from a worker whose lease already expired; every later
// report for that URL is a Duplicate and changes nothing. So each URL counts
// as done exactly once, however many workers fetched it.
type Scheduler struct {
	cfg SchedulerConfig

	queue  []crawlTask          // FIFO frontier; entries whose URL is no longer queued are skipped
	urls   map[string]*urlState // the seen set
	tasks  map[uint64]string    // URL of every task ever issued, by ID
	active map[uint64]time.Time // deadline of every current lease, by task ID
	nextID uint64
	stats  SchedulerStats
}

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// LeaseTimeout is how long a worker has to report a task before it is
	// handed to another worker. It must be positive.
	LeaseTimeout time.Duration
	// MaxPages bounds the URLs admitted to the frontier (the start URL
	// included); zero means no limit.
	MaxPages int
	// MaxDepth bounds how many links from the start URL are followed; zero
	// means no limit.
	MaxDepth int
}

// Task is one leased fetch.
type Task struct {
	// ID identifies this lease; a reassigned URL gets a new ID.
	ID uint64
	// URL is the URL to fetch.
	URL string
	// Depth is the number of links between the start URL and URL.
	Depth int
	// Worker is who holds the lease.
	Worker string
	// Deadline is when the lease expires.
	Deadline time.Time
}

// SchedulerStats are a Scheduler's counters.
type SchedulerStats struct {
	// Pages counts URLs reported done successfully.
	Pages int
	// Failed counts URLs reported done with a failure.
	Failed int
	// Leases counts tasks handed out, reassignments included.
	Leases int
	// Reassigned counts leases that expired before a report, whose URL
	// went back to the frontier.
	Reassigned int
	// Duplicates counts reports ignored because their URL was already done.
	Duplicates int
	// Queued is the number of URLs waiting in the frontier.
	Queued int
	// Leased is the number of URLs currently leased and not yet done.
	Leased int
}

// ReportStatus says what a Scheduler did with a report.
type ReportStatus int

const (
	// Accepted means the report was the first for its URL and was recorded.
	Accepted ReportStatus = iota
	// Duplicate means the URL was already done; the report was ignored.
	Duplicate
	// UnknownTask means no task with that ID was ever issued; the report was
	// ignored.
	UnknownTask
)

// String returns the status name.
func (r ReportStatus) String() string {
	switch r {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case UnknownTask:
		return "unknown task"
	}
	return fmt.Sprintf("ReportStatus(%d)", int(r))
}

type urlPhase int

const (
	stateQueued urlPhase = iota
	stateLeased
	stateDone
)

type urlState struct {
	phase urlPhase
	depth int
	task  uint64 // the current lease while stateLeased
}

// NewScheduler returns a Scheduler whose frontier holds startURL at depth 0.
func NewScheduler(startURL string, cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.LeaseTimeout <= 0 {
		return nil, fmt.Errorf("crawler: SchedulerConfig.LeaseTimeout %v must be positive", cfg.LeaseTimeout)
	}
	if cfg.MaxPages < 0 || cfg.MaxDepth < 0 {
		return nil, fmt.Errorf("crawler: SchedulerConfig limits must not be negative (MaxPages %d, MaxDepth %d)",
			cfg.MaxPages, cfg.MaxDepth)
	}
	s := &Scheduler{cfg: cfg, urls: make(map[string]*urlState), tasks: make(map[uint64]string),
		active: make(map[uint64]time.Time)}
	s.admit(startURL, 0)
	return s, nil
}

func (s *Scheduler) admit(url string, depth int) {
	if _, seen := s.urls[url]; seen {
		return
	}
	if s.cfg.MaxPages > 0 && len(s.urls) >= s.cfg.MaxPages {
		return
	}
	s.urls[url] = &urlState{phase: stateQueued, depth: depth}
	s.queue = append(s.queue, crawlTask{url: url, depth: depth})
	s.stats.Queued++
}

// Expire returns to the frontier every URL whose lease ended at or before
// now, and reports how many there were. Lease calls it itself.
func (s *Scheduler) Expire(now time.Time) int {
	var expired []uint64
	for id, deadline := range s.active {
		if !now.Before(deadline) {
			expired = append(expired, id)
		}
	}
	slices.Sort(expired) // requeue in lease order, not map order
	for _, id := range expired {
		delete(s.active, id)
		url := s.tasks[id]
		st := s.urls[url]
		st.phase = stateQueued
		s.stats.Queued++
		s.stats.Reassigned++
		s.queue = append(s.queue, crawlTask{url: url, depth: st.depth})
	}
	return len(expired)
}

// Lease hands worker the next URL to fetch, leased until now+LeaseTimeout.
// It returns false if the frontier is empty, which does not mean the crawl
// is over (see Done): a lease may still expire or a report add links.
func (s *Scheduler) Lease(worker string, now time.Time) (Task, bool) {
	if len(s.active) > 0 {
		s.Expire(now)
	}
	for len(s.queue) > 0 {
		next := s.queue[0]
		s.queue[0] = crawlTask{}
		s.queue = s.queue[1:]
		st := s.urls[next.url]
		if st.phase != stateQueued {
			continue // done by a late report while it waited here
		}
		s.nextID++
		t := Task{ID: s.nextID, URL: next.url, Depth: st.depth, Worker: worker, Deadline: now.Add(s.cfg.LeaseTimeout)}
		s.tasks[t.ID] = t.URL
		s.active[t.ID] = t.Deadline
		st.phase, st.task = stateLeased, t.ID
		s.stats.Queued--
		s.stats.Leases++
		return t, true
	}
	return Task{}, false
}

// Report records that task's URL was fetched and had links. The first report
// for a URL is Accepted, even if its lease has expired or the URL was leased
// again since; the links are then added to the frontier (one link deeper,
// within MaxDepth and MaxPages). Any later report for the URL is a Duplicate.
func (s *Scheduler) Report(taskID uint64, links []string, now time.Time) ReportStatus {
	st, status := s.complete(taskID)
	if status != Accepted {
		return status
	}
	s.stats.Pages++
	if s.cfg.MaxDepth <= 0 || st.depth < s.cfg.MaxDepth {
		for _, link := range links {
			s.admit(link, st.depth+1)
		}
	}
	return Accepted
}

// Fail records that task's URL could not be fetched (after the worker's own
// retries); the URL is done and is not handed out again. Duplicates are
// treated as in Report.
func (s *Scheduler) Fail(taskID uint64, now time.Time) ReportStatus {
	_, status := s.complete(taskID)
	if status == Accepted {
		s.stats.Failed++
	}
	return status
}

func (s *Scheduler) complete(taskID uint64) (*urlState, ReportStatus) {
	url, ok := s.tasks[taskID]
	if !ok {
		return nil, UnknownTask
	}
	st := s.urls[url]
	switch st.phase {
	case stateDone:
		s.stats.Duplicates++
		return nil, Duplicate
	case stateLeased:
		delete(s.active, st.task)
	case stateQueued:
		s.stats.Queued-- // its queue entry is skipped when reached
	}
	st.phase = stateDone
	return st, Accepted
}

// Done reports whether the crawl is over: nothing queued and nothing leased.
func (s *Scheduler) Done() bool { return s.stats.Queued == 0 && len(s.active) == 0 }

// NextDeadline returns the earliest deadline of a current lease, so that a
// coordinator knows when to call Expire; false if nothing is leased.
func (s *Scheduler) NextDeadline() (time.Time, bool) {
	var first time.Time
	found := false
	for _, d := range s.active {
		if !found || d.Before(first) {
			first, found = d, true
		}
	}
	return first, found
}

// Stats returns the counters.
func (s *Scheduler) Stats() SchedulerStats {
	st := s.stats
	st.Leased = len(s.active)
	return st
}
