package crawler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Network connects DistributedCrawl's workers to its coordinator. The
// default (a nil Network) is loopback TCP; package crawler/labnet connects
// them through a simulated network that loses, delays and duplicates calls.
type Network interface {
	// Connect serves server and returns n clients of it, one per worker,
	// made with opts; stop closes the clients and whatever Connect started,
	// but not server.
	Connect(ctx context.Context, server *rpc.Server, n int, opts ...rpc.Option) (clients []*rpc.Client, stop func(), err error)
}

// DistributedConfig configures DistributedCrawl.
type DistributedConfig struct {
	// StartURL is where the crawl starts; pass a normalised URL (see
	// Normalize).
	StartURL string
	// Fetcher fetches pages for every worker. Pass a PoliteFetcher: it
	// obeys robots.txt and retries failed fetches, and its Stats are then
	// part of the result.
	Fetcher Fetcher
	// Workers is the number of worker goroutines. Default 4.
	Workers int
	// Network connects the workers to the coordinator; nil means loopback
	// TCP (see Network).
	Network Network
	// LeaseTimeout, PollInterval, MaxPages and MaxDepth are as in
	// CoordinatorConfig.
	LeaseTimeout time.Duration
	PollInterval time.Duration
	MaxPages     int
	MaxDepth     int
	// Progress, if not nil, is called every ProgressInterval (default 1s)
	// while the crawl runs, and once at the end, from one goroutine.
	Progress         func(DistributedProgress)
	ProgressInterval time.Duration

	// reportPolicy replaces at-most-once for reports; tests use it to show
	// what goes wrong without it.
	reportPolicy semantics.Policy
}

// DistributedProgress is a snapshot of a running distributed crawl.
type DistributedProgress struct {
	SchedulerStats
	Elapsed time.Duration
}

// DistributedResult is what a distributed crawl did.
type DistributedResult struct {
	// Fetched lists, sorted, the URLs reported fetched, except those
	// whose page asked not to be indexed: NoIndex lists them, sorted.
	// Failed maps the URLs reported failed to their error text.
	Fetched []string
	NoIndex []string
	Failed  map[string]string
	// Skipped counts the links the crawl did not follow, by reason, with
	// a few examples of each.
	Skipped []Skipped
	// Coordinator holds the coordinator's and its scheduler's counters:
	// pages, leases, reassignments, duplicate reports ignored...
	Coordinator CoordinatorStats
	// Workers sums the workers' counters: fetches, report resends...
	Workers WorkerStats
	// Fetcher holds the fetcher's counters if it is a PoliteFetcher:
	// requests and retries of failed fetches.
	Fetcher PoliteStats
	// TableDuplicates counts report requests the rpc server answered from
	// its at-most-once table without running Report again (duplicates of a
	// completed call, and duplicates that waited for a running one).
	TableDuplicates uint64
	// RPCAttempts and RPCRetries count the attempts of the workers' calls
	// and how many of them repeated a failed one.
	RPCAttempts, RPCRetries uint64
	// Elapsed is the time the crawl took.
	Elapsed time.Duration
	// Check is nil if every URL was reported exactly once (see
	// Coordinator.Check).
	Check error
}

// PagesPerSecond is the rate at which pages were reported.
func (r *DistributedResult) PagesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Coordinator.Pages+r.Coordinator.Failed) / r.Elapsed.Seconds()
}

func (c *DistributedConfig) withDefaults() (DistributedConfig, error) {
	cp := *c
	if cp.Workers == 0 {
		cp.Workers = 4
	}
	if cp.ProgressInterval == 0 {
		cp.ProgressInterval = time.Second
	}
	if cp.LeaseTimeout == 0 {
		cp.LeaseTimeout = DefaultLeaseTimeout
	}
	switch {
	case cp.Fetcher == nil:
		return cp, errors.New("crawler: DistributedConfig.Fetcher is nil")
	case cp.Workers < 0:
		return cp, fmt.Errorf("crawler: DistributedConfig.Workers %d is negative", cp.Workers)
	case cp.ProgressInterval < 0:
		return cp, fmt.Errorf("crawler: DistributedConfig.ProgressInterval %v is negative", cp.ProgressInterval)
	}
	return cp, nil
}

// DistributedCrawl crawls from cfg.StartURL with a Coordinator and
// cfg.Workers workers (RunWorker) talking to it over cfg.Network, and
// returns when the crawl is over. Everything it starts (the rpc server, the
// network, the workers) is stopped before it returns.
//
// The error is non-nil if the configuration is bad, if ctx ended the crawl
// early, or if every worker gave up; the result then describes the partial
// crawl. Whether every URL was reported exactly once is in the result's
// Check, not in the error.
func DistributedCrawl(ctx context.Context, cfg DistributedConfig) (DistributedResult, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return DistributedResult{}, err
	}
	cl, err := startCluster(ctx, &c, c.Workers)
	if err != nil {
		return DistributedResult{}, err
	}
	start := time.Now()

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if c.Progress != nil {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			tick := time.NewTicker(c.ProgressInterval)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					c.Progress(DistributedProgress{SchedulerStats: cl.coord.Stats().SchedulerStats, Elapsed: time.Since(start)})
				case <-stopProgress:
					return
				}
			}
		}()
	}

	stats := make([]WorkerStats, c.Workers)
	errs := make([]error, c.Workers)
	var wg sync.WaitGroup
	for i := range c.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{coord: NewCoordinatorClient(cl.clients[i]), f: c.Fetcher,
				cfg: WorkerConfig{Name: workerName(i), Patience: DefaultPatience}}
			if c.reportPolicy != nil {
				w.coord.reportPolicy = c.reportPolicy
			}
			errs[i] = w.run(ctx)
			stats[i] = w.stats
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	progressDone.Wait()

	res := DistributedResult{Elapsed: elapsed}
	for _, st := range stats {
		res.Workers.Add(st)
	}
	for _, client := range cl.clients {
		run := client.Stats().Run
		res.RPCAttempts += run.Attempts
		res.RPCRetries += run.Retries
	}
	table := cl.core.Stats().Table
	res.TableDuplicates = table.Duplicates + table.InFlightWaits
	cl.close()

	if ps, ok := c.Fetcher.(interface{ Stats() PoliteStats }); ok {
		res.Fetcher = ps.Stats()
	}
	res.Coordinator = cl.coord.Stats()
	res.Fetched, res.Failed = cl.coord.Result()
	res.NoIndex = cl.coord.NoIndex()
	res.Skipped = cl.coord.Skipped()
	res.Check = cl.coord.Check()
	if c.Progress != nil {
		c.Progress(DistributedProgress{SchedulerStats: res.Coordinator.SchedulerStats, Elapsed: elapsed})
	}

	select {
	case <-cl.coord.Done():
		return res, nil
	default:
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("crawler: distributed crawl: %w", ctx.Err())
	}
	return res, fmt.Errorf("crawler: distributed crawl: every worker gave up: %w", errors.Join(errs...))
}

func workerName(i int) string { return fmt.Sprintf("worker-%d", i) }

// cluster is a coordinator served over a network, with clients for workers.
type cluster struct {
	coord   *Coordinator
	core    *rpc.Server
	clients []*rpc.Client
	close   func()
}

// startCluster starts a Coordinator configured by c and n clients of it
// over c.Network (loopback TCP if nil). The clients use at-least-once by default.
func startCluster(ctx context.Context, c *DistributedConfig, n int) (*cluster, error) {
	coord, err := NewCoordinator(CoordinatorConfig{StartURL: c.StartURL, LeaseTimeout: c.LeaseTimeout,
		PollInterval: c.PollInterval, MaxPages: c.MaxPages, MaxDepth: c.MaxDepth})
	if err != nil {
		return nil, err
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		return nil, err
	}
	cl := &cluster{coord: coord, core: core}
	policy := rpc.WithSemantics(semantics.AtLeastOnce())
	closeClients := func() {
		for _, client := range cl.clients {
			client.Close()
		}
	}

	if c.Network != nil {
		clients, stop, err := c.Network.Connect(ctx, core, n, policy)
		if err != nil {
			core.Close()
			return nil, err
		}
		cl.clients = clients
		cl.close = func() {
			stop()
			core.Close()
		}
		return cl, nil
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("crawler: listen: %w", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		core.Serve(l) // returns ErrServerClosed after Close
	}()
	cl.close = func() {
		closeClients()
		core.Close()
		<-served
	}
	for range n {
		client, err := rpc.Dial(ctx, "tcp", l.Addr().String(), policy)
		if err != nil {
			cl.close()
			return nil, fmt.Errorf("crawler: dial coordinator: %w", err)
		}
		cl.clients = append(cl.clients, client)
	}
	return cl, nil
}
