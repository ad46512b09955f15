package crawler

import (
	"fmt"
	"slices"
	"time"
)

// A Scheduler can keep a journal of what each call changed, so that a
// coordinator writes only that to its durable store (see CrawlStore) after
// every call, and a Scheduler is rebuilt from the records after a crash.
// Every record is the whole current state of one URL, one host, or the
// counters: the last record written for a key is the truth.

// journal names what changed since the last takeChanges.
type journal struct {
	urls  map[string]bool
	hosts map[string]bool
	meta  bool
}

func (s *Scheduler) touchURL(st *urlState) {
	if s.journal != nil {
		s.journal.urls[st.url] = true
	}
}

func (s *Scheduler) touchHost(host string) {
	if s.journal != nil {
		s.journal.hosts[host] = true
	}
}

func (s *Scheduler) touchMeta() {
	if s.journal != nil {
		s.journal.meta = true
	}
}

// startJournal makes s record its changes from now on; the first
// takeChanges returns the whole state.
func (s *Scheduler) startJournal() {
	s.journal = &journal{urls: make(map[string]bool), hosts: make(map[string]bool), meta: true}
	for u := range s.urls {
		s.journal.urls[u] = true
	}
	for h := range s.hosts {
		s.journal.hosts[h] = true
	}
}

// urlRecord is the durable form of a urlState.
type urlRecord struct {
	URL       string       `json:"url"`
	Host      string       `json:"host,omitempty"`
	Phase     int          `json:"phase"`
	Depth     int          `json:"depth,omitempty"`
	Seq       uint64       `json:"seq,omitempty"`
	NotBefore time.Time    `json:"not_before,omitzero"`
	Attempts  int          `json:"attempts,omitempty"`
	Failed    bool         `json:"failed,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	NoIndex   bool         `json:"noindex,omitempty"`
	Tasks     []uint64     `json:"tasks,omitempty"`
	Lease     *leaseRecord `json:"lease,omitempty"`
}

type leaseRecord struct {
	ID       uint64    `json:"id"`
	Worker   string    `json:"worker"`
	Process  string    `json:"process,omitempty"`
	Deadline time.Time `json:"deadline"`
}

// hostRecord is the durable form of a hostSlots (its queue and leases out
// are rebuilt from the URLs).
type hostRecord struct {
	Host      string        `json:"host"`
	Order     int           `json:"order"`
	Known     bool          `json:"known,omitempty"`
	Delay     time.Duration `json:"delay,omitempty"`
	NotBefore time.Time     `json:"not_before,omitzero"`
}

// metaRecord holds the Scheduler's counters.
type metaRecord struct {
	NextID uint64         `json:"next_id"`
	Seq    uint64         `json:"seq"`
	Next   int            `json:"next"`
	Stats  SchedulerStats `json:"stats"`
}

// changes is what a Scheduler changed since the last takeChanges.
type changes struct {
	urls  []urlRecord
	hosts []hostRecord
	meta  *metaRecord
}

func (c *changes) empty() bool { return len(c.urls) == 0 && len(c.hosts) == 0 && c.meta == nil }

// takeChanges returns the records of what changed since the last call and
// starts a new journal. It returns nothing unless startJournal was called.
func (s *Scheduler) takeChanges() changes {
	var c changes
	j := s.journal
	if j == nil {
		return c
	}
	for u := range j.urls {
		c.urls = append(c.urls, s.urlRecord(s.urls[u]))
	}
	for name := range j.hosts {
		c.hosts = append(c.hosts, s.hostRecord(name))
	}
	if j.meta {
		m := metaRecord{NextID: s.nextID, Seq: s.seq, Next: s.next, Stats: s.stats}
		m.Stats.Queued, m.Stats.Leased = 0, 0 // derived on restore
		c.meta = &m
	}
	clear(j.urls)
	clear(j.hosts)
	j.meta = false
	return c
}

func (s *Scheduler) urlRecord(st *urlState) urlRecord {
	r := urlRecord{URL: st.url, Host: st.host, Phase: int(st.phase), Depth: st.depth, Seq: st.seq,
		NotBefore: st.notBefore, Attempts: st.attempts, Failed: st.failed, Reason: st.reason,
		NoIndex: st.noIndex, Tasks: slices.Clone(st.taskIDs)}
	if st.lease != nil {
		r.Lease = &leaseRecord{ID: st.lease.id, Worker: st.lease.worker, Process: st.lease.process, Deadline: st.lease.deadline}
	}
	return r
}

func (s *Scheduler) hostRecord(name string) hostRecord {
	h := s.hosts[name]
	return hostRecord{Host: name, Order: slices.Index(s.order, name), Known: h.known,
		Delay: h.delay, NotBefore: h.notBefore}
}

// restoreScheduler rebuilds a Scheduler from its records: the frontier in
// its order, the leases with their deadlines (they keep running while the
// coordinator is down), the hosts' pace and the counters.
func restoreScheduler(cfg SchedulerConfig, urls []urlRecord, hosts []hostRecord, meta metaRecord) (*Scheduler, error) {
	s, err := newScheduler(cfg)
	if err != nil {
		return nil, err
	}
	s.nextID, s.seq, s.next, s.stats = meta.NextID, meta.Seq, meta.Next, meta.Stats
	s.stats.Queued, s.stats.Leased = 0, 0
	slices.SortFunc(hosts, func(a, b hostRecord) int { return a.Order - b.Order })
	for _, r := range hosts {
		h := s.host(r.Host)
		h.known, h.delay, h.notBefore = r.Known, r.Delay, r.NotBefore
	}
	slices.SortFunc(urls, func(a, b urlRecord) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for _, r := range urls {
		if r.Phase < int(stateQueued) || r.Phase > int(stateDone) {
			return nil, fmt.Errorf("crawler: crawl state: URL %s has phase %d", r.URL, r.Phase)
		}
		st := &urlState{url: r.URL, host: r.Host, phase: urlPhase(r.Phase), depth: r.Depth, seq: r.Seq,
			notBefore: r.NotBefore, attempts: r.Attempts, failed: r.Failed, reason: r.Reason,
			noIndex: r.NoIndex, taskIDs: slices.Clone(r.Tasks)}
		s.urls[r.URL] = st
		for _, id := range r.Tasks {
			s.tasks[id] = r.URL
			if id > s.nextID {
				return nil, fmt.Errorf("crawler: crawl state: task %d of %s is beyond the last task issued (%d)", id, r.URL, s.nextID)
			}
		}
		h := s.host(r.Host)
		if r.Lease != nil {
			st.lease = &leaseState{id: r.Lease.ID, worker: r.Lease.Worker, process: r.Lease.Process, deadline: r.Lease.Deadline}
			s.tasks[r.Lease.ID] = r.URL
			s.active[r.Lease.ID] = r.URL
			s.held[r.Lease.Worker] = r.Lease.ID
			h.out++
		}
		switch st.phase {
		case stateQueued:
			h.queue = append(h.queue, queued{url: r.URL, seq: r.Seq})
			s.stats.Queued++
		case stateLeased:
			if st.lease == nil {
				return nil, fmt.Errorf("crawler: crawl state: URL %s is leased without a lease", r.URL)
			}
		}
	}
	return s, nil
}
