package crawler

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scheduler is the coordinator's state for a distributed crawl: the
// frontier of URLs to fetch, the seen set, the leases handed to workers and
// each host's fetch slots. It is a pure state machine: no goroutines, no
// network and no clock of its own (every method that needs the time takes it
// as now), so tests drive it step by step. It is not safe for concurrent
// use; the coordinator calls it from one goroutine or under its own mutex.
//
// A worker Leases a Task, fetches its URL and Reports the links it found (or
// Fails it, or asks for a Retry). A lease that is not reported by its
// deadline expires: the URL goes back to the frontier and the next Lease
// hands it out again under a new task ID ("reassigned"). Whichever report
// for a URL arrives first is accepted, even from a worker whose lease
// already expired; every later report for that URL is a Duplicate and
// changes nothing. So each URL counts as done exactly once, however many
// workers fetched it.
//
// A worker holds one lease at a time. A Lease from a worker whose lease is
// still current (not reported, not expired) returns that same lease again:
// its first reply was lost or the request was duplicated. A Lease from a
// worker whose lease is not current any more releases it: the worker has
// given up on it.
//
// Politeness across workers: each host has fetch slots. A URL is leased only
// when its host has a free slot (fewer than its limit of leases out) and its
// host's next start time has come (its delay since the last lease, the
// pacing a worker reported, a Retry-After); so a lease's time does not run
// while its URL waits for the host, and the limits hold whichever workers
// fetch. A host that no worker has reported on yet gets one slot, so its
// robots.txt (and its Crawl-delay) is known before more requests go out,
// and a host with a delay between requests (HostDelay, or a Crawl-delay a
// worker reported) gets one slot: its next lease waits for the report of
// the last one, which says when the host may be requested again.
type Scheduler struct {
	cfg SchedulerConfig

	urls   map[string]*urlState // the seen set
	hosts  map[string]*hostSlots
	order  []string          // hosts in the order they were first seen, for round-robin
	next   int               // index in order where the next Lease starts looking
	tasks  map[uint64]string // URL of every task ever issued, by ID
	active map[uint64]string // URL of every current lease, by task ID
	held   map[string]uint64 // each worker's latest lease, by worker name
	nextID uint64
	seq    uint64 // admission order of queued entries
	stats  SchedulerStats

	journal *journal // nil unless journaling
	// skipped, if not nil, is told of every link not admitted because of
	// Hosts, MaxPages or MaxDepth (see SkipOtherHost and the others).
	skipped func(url, reason string)
}

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// LeaseTimeout is how long a worker has to report a task before it is
	// handed to another worker. It must be positive.
	LeaseTimeout time.Duration
	// MaxPages bounds the URLs admitted to the frontier (the start URLs
	// included); zero means no limit.
	MaxPages int
	// MaxDepth bounds how many links from a start URL are followed; zero
	// means no limit.
	MaxDepth int
	// Hosts, if not empty, lists the hosts (as HostKey returns them: host
	// and port, any scheme) whose URLs may be admitted, with their www/apex
	// variants; links to other hosts are dropped. Empty means any host.
	Hosts []string
	// HostLimit bounds the leases out at once for one host, over all
	// workers; zero means no limit (and no per-host slots at all).
	HostLimit int
	// HostDelay is the least time between two leases of the same host; a
	// larger Crawl-delay reported by a worker wins. Zero means none.
	HostDelay time.Duration
	// MaxHostDelay caps the Crawl-delay and Retry-After a host may impose;
	// zero means no cap.
	MaxHostDelay time.Duration
	// MaxRetries is how many times a URL whose fetch failed with a
	// transient error is queued again (see Retry); zero means never.
	MaxRetries int
	// RetryDelay is the wait before a URL's first retry; each later retry
	// waits twice as long as the one before, up to 64 times RetryDelay. A
	// host's Retry-After, if longer, wins. Default 200ms.
	RetryDelay time.Duration
}

// DefaultRetryDelay is SchedulerConfig.RetryDelay's default.
const DefaultRetryDelay = 200 * time.Millisecond

// Task is one leased fetch.
type Task struct {
	// ID identifies this lease; a reassigned URL gets a new ID.
	ID uint64
	// URL is the URL to fetch.
	URL string
	// Depth is the number of links between a start URL and URL.
	Depth int
	// Worker is who holds the lease.
	Worker string
	// Deadline is when the lease expires.
	Deadline time.Time
}

// SchedulerStats are a Scheduler's counters.
type SchedulerStats struct {
	// Pages counts URLs reported done successfully, those reported
	// NoIndex included.
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
	// RepeatedLeases counts Lease calls answered with the lease the worker
	// already held (a retry after a lost reply, or a duplicated request).
	RepeatedLeases int
	// Retried counts URLs queued again after a transient failure.
	Retried int
	// Released counts leases given up by their worker (it asked for a new
	// one without reporting), whose URL went back to the frontier at once.
	Released int
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
	// Requeued means the URL failed transiently and was queued again (see
	// Retry).
	Requeued
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
	case Requeued:
		return "requeued"
	}
	return fmt.Sprintf("ReportStatus(%d)", int(r))
}

// HostPace is what a worker learned about a host while fetching from it.
type HostPace struct {
	// Delay, if positive, is the least time between two requests that the
	// host asks for (robots.txt Crawl-delay), as the worker saw it; zero
	// leaves the one known before.
	Delay time.Duration
	// Wait, if positive, is how long the host asked to be left alone from
	// the report on (a Retry-After).
	Wait time.Duration
}

type urlPhase int

const (
	stateQueued urlPhase = iota
	stateLeased
	stateDone
)

type urlState struct {
	url       string
	host      string
	phase     urlPhase
	depth     int
	seq       uint64    // admission order while queued
	notBefore time.Time // a retried URL waits until then
	attempts  int       // transient failures so far
	failed    bool      // done with a failure
	noIndex   bool      // done successfully, but its page asked not to be indexed
	reason    string    // why it failed
	taskIDs   []uint64  // every task issued for it
	lease     *leaseState
}

// leaseState is a URL's current lease. A URL has at most one: it is leased
// only while queued, and queued again only once its lease is gone. The
// lease outlives its URL being done by another worker's report, so that its
// host slot stays taken while its worker may still be fetching.
type leaseState struct {
	id       uint64
	worker   string
	process  string // the worker's process (LeaseArgs.Process), if it named one
	deadline time.Time
}

// hostSlots is one host's politeness state.
type hostSlots struct {
	queue     []queued      // FIFO; entries whose URL is no longer queued are skipped
	out       int           // leases out
	known     bool          // a worker reported on one of its URLs
	delay     time.Duration // reported Crawl-delay
	notBefore time.Time     // no lease before
}

type queued struct {
	url string
	seq uint64
}

// NewScheduler returns a Scheduler whose frontier holds startURL at depth 0.
func NewScheduler(startURL string, cfg SchedulerConfig) (*Scheduler, error) {
	return NewSchedulerURLs([]string{startURL}, cfg)
}

// NewSchedulerURLs returns a Scheduler whose frontier holds startURLs at
// depth 0.
func NewSchedulerURLs(startURLs []string, cfg SchedulerConfig) (*Scheduler, error) {
	s, err := newScheduler(cfg)
	if err != nil {
		return nil, err
	}
	if len(startURLs) == 0 {
		return nil, fmt.Errorf("crawler: no start URL")
	}
	for _, u := range startURLs {
		if u == "" || len(u) > MaxURLLength {
			return nil, fmt.Errorf("crawler: start URL %.40q...: want 1 to %d bytes", u, MaxURLLength)
		}
		s.admitStart(u)
	}
	return s, nil
}

func newScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	switch {
	case cfg.LeaseTimeout <= 0:
		return nil, fmt.Errorf("crawler: SchedulerConfig.LeaseTimeout %v must be positive", cfg.LeaseTimeout)
	case cfg.MaxPages < 0 || cfg.MaxDepth < 0 || cfg.HostLimit < 0 || cfg.MaxRetries < 0:
		return nil, fmt.Errorf("crawler: SchedulerConfig limits must not be negative (MaxPages %d, MaxDepth %d, HostLimit %d, MaxRetries %d)",
			cfg.MaxPages, cfg.MaxDepth, cfg.HostLimit, cfg.MaxRetries)
	case cfg.HostDelay < 0 || cfg.MaxHostDelay < 0 || cfg.RetryDelay < 0:
		return nil, fmt.Errorf("crawler: SchedulerConfig delays must not be negative (HostDelay %v, MaxHostDelay %v, RetryDelay %v)",
			cfg.HostDelay, cfg.MaxHostDelay, cfg.RetryDelay)
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	return &Scheduler{cfg: cfg, urls: make(map[string]*urlState), hosts: make(map[string]*hostSlots),
		tasks: make(map[uint64]string), active: make(map[uint64]string), held: make(map[string]uint64)}, nil
}

// hostOf is the host under which the Scheduler keeps rawURL's slots: its
// HostKey (host and port, whatever the scheme, as a PoliteFetcher keeps its
// politeness), or "" for a string that is not a URL.
func hostOf(rawURL string) string {
	if !strings.Contains(rawURL, "://") {
		return ""
	}
	k, err := HostKey(rawURL)
	if err != nil {
		return ""
	}
	return k
}

// allowedHost reports whether links to host may be admitted: Hosts is empty,
// or lists host or its www/apex variant (a worker's PoliteFetcher lets only
// redirects lead there).
func (s *Scheduler) allowedHost(host string) bool {
	if len(s.cfg.Hosts) == 0 {
		return true
	}
	bare := strings.TrimPrefix(host, "www.")
	for _, h := range s.cfg.Hosts {
		if h == host || strings.TrimPrefix(h, "www.") == bare {
			return true
		}
	}
	return false
}

// admitStart admits a start URL: it is crawled whatever Hosts says.
func (s *Scheduler) admitStart(u string) {
	if _, seen := s.urls[u]; seen {
		return
	}
	s.add(u, hostOf(u), 0)
}

// MaxURLLength bounds the URLs a Scheduler admits; longer links are
// dropped (a CrawlStore could not key them, and no sane page needs them).
const MaxURLLength = 8 << 10

func (s *Scheduler) admit(u string, depth int) {
	if u == "" || len(u) > MaxURLLength {
		return
	}
	if _, seen := s.urls[u]; seen {
		return
	}
	host := hostOf(u)
	if !s.allowedHost(host) {
		s.skip(u, SkipOtherHost)
		return
	}
	if s.cfg.MaxPages > 0 && len(s.urls) >= s.cfg.MaxPages {
		s.skip(u, SkipPageLimit)
		return
	}
	s.add(u, host, depth)
}

// skip tells s.skipped, if set, that u was not admitted, and why.
func (s *Scheduler) skip(u, reason string) {
	if s.skipped != nil {
		s.skipped(u, reason)
	}
}

func (s *Scheduler) add(u, host string, depth int) {
	st := &urlState{url: u, host: host, depth: depth}
	s.urls[u] = st
	s.enqueue(st)
	s.touchMeta()
}

// enqueue puts st at the back of its host's queue.
func (s *Scheduler) enqueue(st *urlState) {
	s.seq++
	st.phase, st.seq = stateQueued, s.seq
	h := s.host(st.host)
	h.queue = append(h.queue, queued{url: st.url, seq: st.seq})
	s.stats.Queued++
	s.touchURL(st)
}

func (s *Scheduler) host(name string) *hostSlots {
	h, ok := s.hosts[name]
	if !ok {
		h = &hostSlots{}
		s.hosts[name] = h
		s.order = append(s.order, name)
	}
	return h
}

// Expire returns to the frontier every URL whose lease ended at or before
// now, and reports how many there were. Lease calls it itself.
func (s *Scheduler) Expire(now time.Time) int {
	var expired []uint64
	for id, u := range s.active {
		if !now.Before(s.urls[u].lease.deadline) {
			expired = append(expired, id)
		}
	}
	slices.Sort(expired) // requeue in lease order, not map order
	for _, id := range expired {
		st := s.drop(id)
		if st.phase == stateLeased {
			s.stats.Reassigned++
			s.enqueue(st)
		}
	}
	if len(expired) > 0 {
		s.touchMeta()
	}
	return len(expired)
}

// drop ends lease id (which must be current): it frees its host slot. The
// caller decides what becomes of the URL.
func (s *Scheduler) drop(id uint64) *urlState {
	u := s.active[id]
	st := s.urls[u]
	delete(s.active, id)
	if s.held[st.lease.worker] == id {
		delete(s.held, st.lease.worker)
	}
	st.lease = nil
	if h := s.hosts[st.host]; h.out > 0 {
		h.out--
		s.touchHost(st.host)
	}
	s.touchURL(st)
	return st
}

// Lease hands worker a URL to fetch, leased until now+LeaseTimeout: the one
// it holds if that lease is current, else the next URL whose host has a
// free slot. It returns false if there is none, which does not mean the
// crawl is over (see Done and NextEvent).
func (s *Scheduler) Lease(worker string, now time.Time) (Task, bool) {
	if len(s.active) > 0 {
		s.Expire(now)
	}
	if id, ok := s.held[worker]; ok {
		st := s.urls[s.active[id]]
		if st.phase == stateLeased {
			s.stats.RepeatedLeases++
			s.touchMeta()
			return s.task(st), true
		}
		// Its URL was done by another report: the worker is not fetching
		// it any more, so its slot is free.
		s.drop(id)
		s.touchMeta()
	}
	for range len(s.order) {
		name := s.order[s.next%len(s.order)]
		s.next++
		h := s.hosts[name]
		if !s.hostFree(h, now) {
			continue
		}
		st := s.pop(h, now)
		if st == nil {
			continue
		}
		s.nextID++
		st.phase = stateLeased
		st.lease = &leaseState{id: s.nextID, worker: worker, deadline: now.Add(s.cfg.LeaseTimeout)}
		st.taskIDs = append(st.taskIDs, s.nextID)
		s.tasks[s.nextID] = st.url
		s.active[s.nextID] = st.url
		s.held[worker] = s.nextID
		h.out++
		if d := s.hostDelay(h); d > 0 {
			h.notBefore = now.Add(d)
		}
		s.stats.Queued--
		s.stats.Leases++
		s.touchURL(st)
		s.touchHost(name)
		s.touchMeta()
		return s.task(st), true
	}
	return Task{}, false
}

// Release gives up worker's lease, if it holds one that is current: its URL
// goes back to the frontier at once. A worker calls it when it cannot finish
// its task (it is shutting down, or its report gave up).
func (s *Scheduler) Release(worker string) bool {
	id, ok := s.held[worker]
	if !ok {
		return false
	}
	st := s.drop(id)
	if st.phase == stateLeased {
		s.stats.Released++
		s.enqueue(st)
	}
	s.touchMeta()
	return true
}

// setLeaseProcess records the process of the worker holding lease id (see
// LeaseArgs.Process), so that a coordinator restarted on its store knows
// it.
func (s *Scheduler) setLeaseProcess(id uint64, process string) {
	u, ok := s.active[id]
	if !ok {
		return
	}
	if st := s.urls[u]; st.lease != nil && st.lease.process != process {
		st.lease.process = process
		s.touchURL(st)
	}
}

func (s *Scheduler) task(st *urlState) Task {
	return Task{ID: st.lease.id, URL: st.url, Depth: st.depth, Worker: st.lease.worker, Deadline: st.lease.deadline}
}

// hostLimit is how many leases h may have out; 0 means no limit. A host
// with a delay between requests gets one lease at a time: a lease's request
// may start late (its worker reads robots.txt first, or waits for its own
// pacing), and only its report says when the host's next request may start.
func (s *Scheduler) hostLimit(h *hostSlots) int {
	switch {
	case s.hostDelay(h) > 0:
		return 1
	case s.cfg.HostLimit == 0:
		return 0
	case !h.known:
		return 1
	}
	return s.cfg.HostLimit
}

func (s *Scheduler) hostDelay(h *hostSlots) time.Duration {
	return max(s.cfg.HostDelay, s.capDelay(h.delay))
}

func (s *Scheduler) capDelay(d time.Duration) time.Duration {
	if s.cfg.MaxHostDelay > 0 {
		return min(d, s.cfg.MaxHostDelay)
	}
	return d
}

func (s *Scheduler) hostFree(h *hostSlots, now time.Time) bool {
	if limit := s.hostLimit(h); limit > 0 && h.out >= limit {
		return false
	}
	return !now.Before(h.notBefore)
}

// pop takes from h's queue the first URL that is queued and due, dropping
// stale entries at the head; nil if there is none.
func (s *Scheduler) pop(h *hostSlots, now time.Time) *urlState {
	for i := 0; i < len(h.queue); i++ {
		q := h.queue[i]
		st := s.urls[q.url]
		if st.phase != stateQueued || st.seq != q.seq {
			if i == 0 { // stale head: drop it for good
				h.queue[0] = queued{}
				h.queue = h.queue[1:]
				i--
			}
			continue
		}
		if now.Before(st.notBefore) {
			continue // waiting to be retried
		}
		h.queue = slices.Delete(h.queue, i, i+1)
		return st
	}
	return nil
}

// TaskURL returns the URL of task id, if it was ever issued.
func (s *Scheduler) TaskURL(id uint64) (string, bool) {
	u, ok := s.tasks[id]
	return u, ok
}

// Report records that task's URL was fetched and had links. The first report
// for a URL is Accepted, even if its lease has expired or the URL was leased
// again since; the links are then added to the frontier (one link deeper,
// within MaxDepth, MaxPages and Hosts). Any later report for the URL is a
// Duplicate.
func (s *Scheduler) Report(taskID uint64, links []string, now time.Time) ReportStatus {
	return s.report(taskID, links, false, now)
}

// ReportNoIndex is Report for a page that asked not to be indexed
// (Page.NoIndex): its links are followed as Report's are, and it counts in
// Stats().Pages, but it is listed by NoIndex instead of Fetched.
func (s *Scheduler) ReportNoIndex(taskID uint64, links []string, now time.Time) ReportStatus {
	return s.report(taskID, links, true, now)
}

func (s *Scheduler) report(taskID uint64, links []string, noIndex bool, now time.Time) ReportStatus {
	st, status := s.complete(taskID)
	if status != Accepted {
		return status
	}
	if noIndex {
		st.noIndex = true
		s.touchURL(st)
	}
	s.stats.Pages++
	if s.cfg.MaxDepth <= 0 || st.depth < s.cfg.MaxDepth {
		for _, link := range links {
			s.admit(link, st.depth+1)
		}
	} else {
		for _, link := range links {
			if _, seen := s.urls[link]; !seen && link != "" {
				s.skip(link, SkipDepth)
			}
		}
	}
	return Accepted
}

// Fail records that task's URL could not be fetched; the URL is done and is
// not handed out again. Duplicates are treated as in Report.
func (s *Scheduler) Fail(taskID uint64, now time.Time) ReportStatus {
	return s.FailWith(taskID, "", now)
}

// FailWith is Fail, recording reason as why the URL failed (see Failures).
func (s *Scheduler) FailWith(taskID uint64, reason string, now time.Time) ReportStatus {
	st, status := s.complete(taskID)
	if status == Accepted {
		s.stats.Failed++
		st.failed, st.reason = true, reason
		s.touchURL(st)
	}
	return status
}

// Retry records that task's fetch failed with a transient error (a 503, a
// lost connection): unless the URL has failed MaxRetries times already, it
// is queued again (Requeued) and waits RetryDelay (doubled at each retry) or
// the host's own wait, whichever is longer; otherwise it fails for good with
// reason (Accepted). A report for a URL already done is a Duplicate.
func (s *Scheduler) Retry(taskID uint64, reason string, wait time.Duration, now time.Time) ReportStatus {
	u, ok := s.tasks[taskID]
	if !ok {
		return UnknownTask
	}
	st := s.urls[u]
	s.known(st.host)
	switch {
	case st.phase == stateDone:
		_, status := s.complete(taskID)
		return status
	case st.lease == nil || st.lease.id != taskID:
		return Requeued // its lease expired: the URL is queued or leased again already
	case st.attempts >= s.cfg.MaxRetries:
		return s.FailWith(taskID, reason, now)
	}
	s.drop(taskID)
	st.attempts++
	backoff := s.cfg.RetryDelay << min(st.attempts-1, 6)
	st.notBefore = now.Add(max(backoff, s.capDelay(wait)))
	s.stats.Retried++
	s.enqueue(st)
	s.touchMeta()
	return Requeued
}

// holdHost keeps u's host free of leases until u, queued again by Retry,
// is due: its failure was the host's (see ReportArgs.HostWide).
func (s *Scheduler) holdHost(u string) {
	st := s.urls[u]
	if st == nil || st.phase != stateQueued {
		return
	}
	if h := s.hosts[st.host]; st.notBefore.After(h.notBefore) {
		h.notBefore = st.notBefore
		s.touchHost(st.host)
	}
}

// Pace records what a worker learned about host: its Crawl-delay applies
// to the host's later leases (the latest positive one wins), and its Wait
// keeps the host free of leases until now+Wait (both capped by
// MaxHostDelay).
func (s *Scheduler) Pace(host string, p HostPace, now time.Time) {
	h, ok := s.hosts[host]
	if !ok {
		return
	}
	h.known = true
	if p.Delay > 0 {
		h.delay = p.Delay
	}
	if w := s.capDelay(p.Wait); w > 0 && now.Add(w).After(h.notBefore) {
		h.notBefore = now.Add(w)
	}
	s.touchHost(host)
}

// known notes that a worker has fetched from host: its robots.txt is read,
// so it may have all its slots.
func (s *Scheduler) known(host string) {
	if h := s.hosts[host]; !h.known {
		h.known = true
		s.touchHost(host)
	}
}

func (s *Scheduler) complete(taskID uint64) (*urlState, ReportStatus) {
	u, ok := s.tasks[taskID]
	if !ok {
		return nil, UnknownTask
	}
	st := s.urls[u]
	s.known(st.host)
	if st.lease != nil && st.lease.id == taskID {
		s.drop(taskID)
	}
	switch st.phase {
	case stateDone:
		s.stats.Duplicates++
		s.touchMeta()
		return nil, Duplicate
	case stateQueued:
		s.stats.Queued-- // its queue entry is skipped when reached
	}
	st.phase = stateDone
	s.touchURL(st)
	s.touchMeta()
	return st, Accepted
}

// Done reports whether the crawl is over: nothing queued and nothing leased
// that is not done (a lease whose URL another worker reported may still be
// out: it only holds its host slot until reported or expired).
func (s *Scheduler) Done() bool {
	if s.stats.Queued > 0 {
		return false
	}
	for _, u := range s.active {
		if s.urls[u].phase == stateLeased {
			return false
		}
	}
	return true
}

// NextDeadline returns the earliest deadline of a current lease, so that a
// coordinator knows when to call Expire; false if nothing is leased.
func (s *Scheduler) NextDeadline() (time.Time, bool) {
	var first time.Time
	found := false
	for _, u := range s.active {
		if d := s.urls[u].lease.deadline; !found || d.Before(first) {
			first, found = d, true
		}
	}
	return first, found
}

// NextEvent returns the earliest time after now at which a Lease that finds
// nothing now might find something: a lease deadline, a host's next start,
// a retried URL's wait. False if there is none (the crawl is over, or only
// reports can move it).
func (s *Scheduler) NextEvent(now time.Time) (time.Time, bool) {
	first, found := s.NextDeadline()
	consider := func(t time.Time) {
		if t.After(now) && (!found || t.Before(first)) {
			first, found = t, true
		}
	}
	for _, h := range s.hosts {
		if limit := s.hostLimit(h); limit > 0 && h.out >= limit {
			continue // a report or a deadline frees it
		}
		for _, q := range h.queue {
			st := s.urls[q.url]
			if st.phase != stateQueued || st.seq != q.seq {
				continue
			}
			consider(latest(h.notBefore, st.notBefore))
			if !st.notBefore.After(h.notBefore) {
				break // no later entry can be due sooner than the host
			}
		}
	}
	return first, found
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Stats returns the counters.
func (s *Scheduler) Stats() SchedulerStats {
	st := s.stats
	st.Leased = 0
	for _, u := range s.active {
		if s.urls[u].phase == stateLeased {
			st.Leased++
		}
	}
	return st
}

// HostsInFlight returns, for every host with leases out, how many.
func (s *Scheduler) HostsInFlight() map[string]int {
	out := make(map[string]int)
	for name, h := range s.hosts {
		if h.out > 0 {
			out[name] = h.out
		}
	}
	return out
}

// Fetched returns the URLs done successfully, sorted, except those
// reported NoIndex: the crawl's index.
func (s *Scheduler) Fetched() []string {
	var fetched []string
	for u, st := range s.urls {
		if st.phase == stateDone && !st.failed && !st.noIndex {
			fetched = append(fetched, u)
		}
	}
	slices.Sort(fetched)
	return fetched
}

// NoIndex returns the URLs done successfully whose page asked not to be
// indexed (see ReportNoIndex), sorted.
func (s *Scheduler) NoIndex() []string {
	var out []string
	for u, st := range s.urls {
		if st.phase == stateDone && st.noIndex {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Failure is a URL that could not be fetched, and why.
type Failure struct {
	URL    string `json:"url"`
	Reason string `json:"reason"`
}

// Failures returns the URLs done with a failure, sorted by URL.
func (s *Scheduler) Failures() []Failure {
	var out []Failure
	for u, st := range s.urls {
		if st.phase == stateDone && st.failed {
			out = append(out, Failure{URL: u, Reason: st.reason})
		}
	}
	slices.SortFunc(out, func(a, b Failure) int {
		switch {
		case a.URL < b.URL:
			return -1
		case a.URL > b.URL:
			return 1
		}
		return 0
	})
	return out
}
