package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Defaults of WorkersConfig.
const (
	DefaultFetchers = 4
	// defaultHeartbeat is how often a process beats until the coordinator
	// says otherwise (HeartbeatReply.Interval).
	defaultHeartbeat = crawler.DefaultProcessTimeout / 4
	// releaseTimeout bounds the giving back of leases on interrupt.
	releaseTimeout = 2 * time.Second
)

// WorkersConfig configures RunWorkers.
type WorkersConfig struct {
	// Coordinator is the coordinator's TCP address (host:port).
	Coordinator string
	// Fetchers is how many URLs the process fetches at once, each leased
	// by a worker of its own. Default DefaultFetchers.
	Fetchers int
	// Label names the process in the coordinator's records; a random
	// suffix keeps it unique (crawler.NewWorkerName). Default "worker".
	Label string
	// Patience is how long the workers keep trying to reach a coordinator
	// that does not answer (restarting, say). Default
	// crawler.DefaultPatience.
	Patience time.Duration
	// Fetcher fetches the pages; nil means an HTTPFetcher behind a
	// PoliteFetcher that obeys robots.txt, holds at most Fetchers requests
	// to a host and does not retry (the coordinator queues a failed URL
	// again, so that its backoff holds for every worker).
	Fetcher crawler.Fetcher
	// Started, if not nil, is called once the process's name is chosen
	// and its connection dialled.
	Started func(name string)
}

// WorkersReport is what a worker process did.
type WorkersReport struct {
	// Name is the process's name (Label and a random suffix).
	Name string
	// Stats sums its workers' counters.
	Stats crawler.WorkerStats
	// Fetcher holds the polite fetcher's counters, if it is one.
	Fetcher crawler.PoliteStats
	// Released counts the leases given back on interrupt.
	Released int
}

// RunWorkers runs one worker process until the coordinator says the crawl
// is over (nil error), ctx ends (ErrInterrupted: its leases are given back
// first), or its workers stop (an error naming how many, and the first
// reason). The report is filled in every case but a bad configuration.
func RunWorkers(ctx context.Context, cfg WorkersConfig) (*WorkersReport, error) {
	if cfg.Fetchers == 0 {
		cfg.Fetchers = DefaultFetchers
	}
	switch {
	case cfg.Coordinator == "":
		return nil, errors.New("cluster: WorkersConfig.Coordinator is empty")
	case cfg.Fetchers < 0:
		return nil, fmt.Errorf("cluster: WorkersConfig.Fetchers %d is negative", cfg.Fetchers)
	case cfg.Patience < 0:
		return nil, fmt.Errorf("cluster: WorkersConfig.Patience %v is negative", cfg.Patience)
	case strings.Contains(cfg.Label, "/"):
		return nil, fmt.Errorf("cluster: WorkersConfig.Label %q: no '/' please", cfg.Label)
	}
	f := cfg.Fetcher
	if f == nil {
		hf, err := crawler.NewHTTPFetcher(nil)
		if err != nil {
			return nil, err
		}
		defer hf.Close()
		pcfg := crawler.DefaultConfig()
		// The coordinator decides which hosts the crawl enters (every lease
		// names them), how many requests each gets and when, and when a
		// failed URL is tried again: this process obeys robots.txt and its
		// own pacing, and never holds more requests to a host than it holds
		// leases.
		pcfg.MaxRetries = 0
		pcfg.MaxInFlightPerHost = cfg.Fetchers
		if f, err = crawler.Polite(hf, pcfg); err != nil {
			return nil, err
		}
	}
	client, err := rpc.Dial(ctx, "tcp", cfg.Coordinator, rpc.WithSemantics(semantics.AtLeastOnce()))
	if err != nil {
		return nil, fmt.Errorf("cluster: dial coordinator: %w", err)
	}
	defer client.Close()
	coord := crawler.NewCoordinatorClient(client)

	name := crawler.NewWorkerName(cfg.Label)
	rep := &WorkersReport{Name: name}
	if cfg.Started != nil {
		cfg.Started(name)
	}
	workerName := func(i int) string { return fmt.Sprintf("%s/%d", name, i) }

	// The heartbeat starts before the workers lease, so that the process
	// is known alive from its first lease on.
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		heartbeat(hbCtx, coord, crawler.HeartbeatArgs{Process: name, Workers: cfg.Fetchers})
	}()

	stats := make([]crawler.WorkerStats, cfg.Fetchers)
	errs := make([]error, cfg.Fetchers)
	var wg sync.WaitGroup
	for i := range cfg.Fetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = crawler.RunWorkerWith(ctx, client, f, crawler.WorkerConfig{
				Name: workerName(i), Process: name, Patience: cfg.Patience, RetryTransient: true})
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Interrupted: give the leases back, so that other workers fetch
		// their URLs now rather than after the lease time. The heartbeat
		// runs until then, so that the coordinator does not free them
		// meanwhile as a lost process's.
		rctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		for i := range cfg.Fetchers {
			if released, err := coord.Release(rctx, workerName(i)); err == nil && released {
				rep.Released++
			}
		}
		cancel()
	}
	stopHeartbeat()
	<-hbDone
	for _, st := range stats {
		rep.Stats.Add(st)
	}
	if ps, ok := f.(interface{ Stats() crawler.PoliteStats }); ok {
		rep.Fetcher = ps.Stats()
	}
	if ctx.Err() != nil {
		return rep, fmt.Errorf("%w: worker %s; %d leases given back to the coordinator", ErrInterrupted, name, rep.Released)
	}
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		return rep, fmt.Errorf("cluster: %d of %d workers stopped; the first: %w", failed, cfg.Fetchers, first)
	}
	return rep, nil
}

// heartbeat tells the coordinator the process is alive, as often as it
// asks, until ctx ends. A failed heartbeat is not an error: the workers'
// own calls tell whether the coordinator is reachable.
func heartbeat(ctx context.Context, coord *crawler.CoordinatorClient, args crawler.HeartbeatArgs) {
	interval := defaultHeartbeat
	for {
		callCtx, cancel := context.WithTimeout(ctx, 2*interval)
		reply, err := coord.Heartbeat(callCtx, args)
		cancel()
		if err == nil && reply.Interval > 0 {
			interval = reply.Interval
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
