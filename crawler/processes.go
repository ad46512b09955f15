package crawler

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// A worker process (several workers sharing one connection to the
// coordinator, see LeaseArgs.Process) is alive while it calls: its workers'
// Leases and its Heartbeats. A process killed, or cut off, stops calling;
// once it has been silent for ProcessTimeout the coordinator frees every
// lease its workers hold, so that their hosts' slots go to other workers
// within seconds rather than after LeaseTimeout.
//
// A process that was only slow, or whose connection came back, may still
// report a task freed meanwhile: the Scheduler accepts the first report for
// a URL and ignores the others, so each URL is still reported once; the
// URL may have been fetched twice, as after an expired lease. Its next
// Lease or Heartbeat makes it alive again, with no lease.
//
// Each lease is stored with its process, so that a coordinator restarted on
// its store frees the leases of a process that died while it was down once
// that process has not called for twice ProcessTimeout since the restart.

// processSeen is what the coordinator knows of one worker process.
type processSeen struct {
	last    time.Time       // its last call
	workers map[string]bool // the workers that leased in it
	lost    bool            // silent for ProcessTimeout: its leases were freed
}

// MaxProcessName bounds the length of a process name (LeaseArgs.Process,
// HeartbeatArgs.Process).
const MaxProcessName = 256

// forgetLostAfter is how many ProcessTimeouts a lost process is remembered
// (to tell it, if it comes back, that it was lost) before it is forgotten.
const forgetLostAfter = 100

func checkProcessName(name string) error {
	if len(name) > MaxProcessName {
		return fmt.Errorf("crawler: process name of %d bytes (at most %d)", len(name), MaxProcessName)
	}
	return nil
}

// MaxRecordedProcesses bounds the worker processes a crawl's record names
// (see CoordinatorStats.Processes); more are counted, not named.
const MaxRecordedProcesses = 1024

// processRecord is one worker process in the coordinator's durable record.
type processRecord struct {
	Name     string `json:"name"`
	Fetchers int    `json:"fetchers,omitempty"` // its workers, as its heartbeats said
}

// HeartbeatArgs are the arguments of Coordinator.Heartbeat.
type HeartbeatArgs struct {
	// Process names the worker process (see LeaseArgs.Process).
	Process string
	// Workers is how many workers run in the process.
	Workers int
}

// HeartbeatReply is the answer of Coordinator.Heartbeat.
type HeartbeatReply struct {
	// Interval is how often the process should call Heartbeat: a third of
	// the coordinator's ProcessTimeout or less.
	Interval time.Duration
	// Lost means the process had been silent for ProcessTimeout: the
	// leases its workers held were freed.
	Lost bool
	// Done means the crawl is over.
	Done bool
}

// Heartbeat tells the coordinator that the process args.Process is alive.
// A process whose workers set LeaseArgs.Process calls it every
// HeartbeatReply.Interval, whatever its workers are doing, so that a worker
// busy with a slow page does not look dead. It is safe to retry.
func (c *Coordinator) Heartbeat(args HeartbeatArgs, reply *HeartbeatReply) error {
	if args.Process == "" {
		return errors.New("crawler: Heartbeat: empty process name")
	}
	if args.Workers < 0 {
		return fmt.Errorf("crawler: Heartbeat: %d workers", args.Workers)
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
	c.sweepProcesses(now)
	if p := c.processes[args.Process]; p != nil && p.lost {
		reply.Lost = true
	}
	c.heardFrom(args.Process, "", args.Workers, now)
	reply.Interval = c.cfg.ProcessTimeout / 4
	reply.Done = c.finished
	seq := c.persist(nil) // a new process in the record, or leases freed
	c.mu.Unlock()
	return c.commit(seq)
}

// heardFrom notes a call from process (by its worker, if not empty, that
// has workers in all, if known). c.mu is held.
func (c *Coordinator) heardFrom(process, worker string, workers int, now time.Time) {
	p := c.processes[process]
	if p == nil {
		p = &processSeen{workers: make(map[string]bool)}
		c.processes[process] = p
	}
	p.last, p.lost = now, false
	if worker != "" && !p.workers[worker] {
		p.workers[worker] = true
	}
	c.recordProcess(process, max(workers, len(p.workers)))
}

// recordProcess puts process in the crawl's record (which a restarted
// coordinator reads back), or raises its worker count. c.mu is held.
func (c *Coordinator) recordProcess(process string, workers int) {
	rec := &c.record
	i, found := slices.BinarySearchFunc(rec.Processes, process, func(r processRecord, name string) int {
		switch {
		case r.Name < name:
			return -1
		case r.Name > name:
			return 1
		}
		return 0
	})
	switch {
	case found:
		if workers > rec.Processes[i].Fetchers {
			rec.Processes[i].Fetchers = workers
			c.recordDirty = true
		}
	case len(rec.Processes) < MaxRecordedProcesses:
		rec.Processes = slices.Insert(rec.Processes, i, processRecord{Name: process, Fetchers: workers})
		c.recordDirty = true
	case !c.unrecorded[process]:
		// Past the cap, each process is counted once per coordinator run.
		if c.unrecorded == nil {
			c.unrecorded = make(map[string]bool)
		}
		if len(c.unrecorded) < MaxRecordedProcesses {
			c.unrecorded[process] = true
		}
		rec.MoreProcesses++
		c.recordDirty = true
	}
}

// sweepProcesses frees the leases of every process silent for
// ProcessTimeout. Once the crawl is over there is nothing to free, and
// processes fall silent because they were told so: none is lost. c.mu is
// held.
func (c *Coordinator) sweepProcesses(now time.Time) {
	if c.finished {
		return
	}
	for name, p := range c.processes {
		if p.lost && now.Sub(p.last) >= forgetLostAfter*c.cfg.ProcessTimeout {
			delete(c.processes, name) // its record stays; a return makes it new
			continue
		}
		if p.lost || now.Sub(p.last) < c.cfg.ProcessTimeout {
			continue
		}
		p.lost = true
		c.record.Counters.ProcessesLost++
		for w := range p.workers {
			if c.sched.Release(w) {
				c.record.Counters.LostLeases++
			}
		}
		c.recordDirty = true
	}
}

// adoptProcesses makes the processes holding the leases read back from the
// store known, as if heard from one ProcessTimeout from now: a process
// that died while the coordinator was down loses its leases after twice
// ProcessTimeout, not LeaseTimeout, and a live one, whose heartbeats
// resume within a fraction of it, keeps them. c.mu is held, or c is new.
func (c *Coordinator) adoptProcesses() {
	grace := c.started.Add(c.cfg.ProcessTimeout)
	for _, u := range c.sched.active {
		st := c.sched.urls[u]
		if st.lease == nil || st.lease.process == "" {
			continue
		}
		p := c.processes[st.lease.process]
		if p == nil {
			p = &processSeen{last: grace, workers: make(map[string]bool)}
			c.processes[st.lease.process] = p
		}
		p.workers[st.lease.worker] = true
	}
}

// Processes returns how many worker processes (LeaseArgs.Process) took
// part in the crawl, over every start on its store, and the workers they
// said they run.
func (c *Coordinator) Processes() (processes, workers int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.record.Processes {
		workers += p.Fetchers
	}
	return len(c.record.Processes) + c.record.MoreProcesses, workers
}
