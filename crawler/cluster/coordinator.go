package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/rpc"
)

// ErrInterrupted is wrapped by the error RunCoordinator and RunWorkers
// return when their context ended before the crawl was over.
var ErrInterrupted = errors.New("cluster: interrupted")

// DefaultLinger is CoordinatorConfig.Linger's default.
const DefaultLinger = 5 * time.Second

// CoordinatorConfig configures RunCoordinator.
type CoordinatorConfig struct {
	// Listener, if not nil, is where workers are served; RunCoordinator
	// closes it. Otherwise Listen is.
	Listener net.Listener
	// Listen is the TCP address to serve workers on, when Listener is nil.
	Listen string
	// Crawl configures the crawl: start URLs, hosts, limits, politeness.
	// If Crawl.Hosts is empty on a new crawl, the crawl stays on its start
	// URLs' hosts (and their www/apex variants); a resumed crawl keeps its
	// own. Crawl.Store is set by RunCoordinator from DataDir.
	Crawl crawler.CoordinatorConfig
	// DataDir, if not empty, keeps the crawl durable in this directory
	// (created if missing), so that a coordinator run again on it resumes
	// the crawl. Empty means in memory: a coordinator that dies loses it.
	DataDir string
	// Linger is how long, once the crawl is over, the coordinator keeps
	// serving so that workers learn it is over. Default DefaultLinger;
	// negative means not at all.
	Linger time.Duration
	// Started, if not nil, is called once the coordinator serves.
	Started func(Started)
	// Progress, if not nil, is called every ProgressInterval (default 1s)
	// while the crawl runs, from one goroutine.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// ProcessLost, if not nil, is called (within 100ms) after the
	// coordinator lost a worker process and freed its leases (see
	// crawler.CoordinatorConfig.ProcessTimeout); the counters say how many
	// processes were lost, and leases freed, so far.
	ProcessLost func(Progress)
}

// Started describes a coordinator that has begun serving.
type Started struct {
	// Addr is the address workers dial.
	Addr string
	// Store is the crawl's file; empty if the crawl is in memory.
	Store string
	// Resumed is true if the crawl was read back from Store; Complete if
	// that crawl was already over.
	Resumed, Complete bool
	// Stats are the coordinator's counters when it started.
	Stats crawler.CoordinatorStats
}

// Progress is a snapshot of a running crawl.
type Progress struct {
	crawler.CoordinatorStats
	// Elapsed is the crawl's time over every start on its store.
	Elapsed time.Duration
}

// RunCoordinator serves a crawl until it is over and returns its report.
// The error is non-nil (and the report nil) if the configuration is bad,
// the coordinator cannot listen (its store is then left as it was), ctx
// ends first (ErrInterrupted; with a DataDir the crawl resumes on the next
// run), or the store fails.
func RunCoordinator(ctx context.Context, cfg CoordinatorConfig) (*Report, error) {
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.ProgressInterval < 0 {
		return nil, fmt.Errorf("cluster: ProgressInterval %v is negative", cfg.ProgressInterval)
	}
	// Listen first: a coordinator that cannot serve leaves its store as it
	// was (no restart counted).
	l := cfg.Listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("cluster: coordinator: %w", err)
		}
	}
	defer l.Close()
	ccfg := cfg.Crawl
	resuming := false
	if cfg.DataDir != "" {
		store, err := crawler.OpenCrawlStore(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		defer store.Close()
		ccfg.Store = store
		if resuming, err = store.HasCrawl(); err != nil {
			return nil, err
		}
	}
	starts := ccfg.StartURLs
	if ccfg.StartURL != "" {
		starts = append([]string{ccfg.StartURL}, starts...)
	}
	if len(ccfg.Hosts) == 0 && !resuming {
		for _, u := range starts {
			k, err := crawler.HostKey(u)
			if err != nil {
				return nil, fmt.Errorf("cluster: start URL %q: %w", u, err)
			}
			ccfg.Hosts = append(ccfg.Hosts, k)
		}
	}
	coord, err := crawler.NewCoordinator(ccfg)
	if err != nil {
		return nil, err
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		return nil, err
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
	if cfg.Started != nil {
		s := Started{Addr: l.Addr().String(), Resumed: resuming, Stats: st}
		if ccfg.Store != nil {
			s.Store = ccfg.Store.Path()
			s.Complete = resuming && st.Queued+st.Leased == 0
		}
		cfg.Started(s)
	}

	stopWatch := make(chan struct{})
	var watchDone sync.WaitGroup
	if cfg.Progress != nil || cfg.ProcessLost != nil {
		watchDone.Add(1)
		go func() {
			defer watchDone.Done()
			watch(coord, &cfg, stopWatch)
		}()
	}
	defer func() {
		close(stopWatch)
		watchDone.Wait()
	}()

	select {
	case <-coord.Done():
	case <-ctx.Done():
		stopServing()
		if cfg.DataDir != "" {
			return nil, fmt.Errorf("%w; run again on %s to resume", ErrInterrupted, cfg.DataDir)
		}
		return nil, fmt.Errorf("%w; the crawl is lost (it was in memory)", ErrInterrupted)
	}
	if err := coord.Err(); err != nil {
		stopServing()
		return nil, fmt.Errorf("cluster: coordinator stopped: %w (run again on the same data directory to resume from the last write)", err)
	}
	if cfg.Linger > 0 {
		lctx, cancel := context.WithTimeout(ctx, cfg.Linger)
		coord.WaitWorkersTold(lctx, max(time.Second, 4*crawler.DefaultPollInterval))
		cancel()
	}
	table := core.Stats().Table
	stopServing()
	rep := newReport(coord, l.Addr().String(), cfg.DataDir)
	rep.Suppressed = table.Duplicates + table.InFlightWaits
	if err := coord.MarkReported(); err != nil {
		return nil, fmt.Errorf("cluster: the crawl is over, but its store failed: %w", err)
	}
	return rep, nil
}

// watch calls cfg.Progress every cfg.ProgressInterval, and cfg.ProcessLost
// when the coordinator has lost another worker process, until stop is
// closed.
func watch(coord *crawler.Coordinator, cfg *CoordinatorConfig, stop <-chan struct{}) {
	every := cfg.ProgressInterval
	if cfg.ProcessLost != nil {
		every = min(every, 100*time.Millisecond)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	lost := coord.Stats().ProcessesLost
	last := time.Now()
	for {
		select {
		case <-tick.C:
		case <-stop:
			return
		}
		st := coord.Stats()
		if cfg.ProcessLost != nil && st.ProcessesLost != lost {
			lost = st.ProcessesLost
			cfg.ProcessLost(Progress{CoordinatorStats: st, Elapsed: coord.Elapsed()})
		}
		if cfg.Progress != nil && time.Since(last) >= cfg.ProgressInterval {
			last = time.Now()
			cfg.Progress(Progress{CoordinatorStats: st, Elapsed: coord.Elapsed()})
		}
	}
}
