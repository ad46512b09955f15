package crawler

import (
	"context"
	"errors"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/crawler/labnet"
	"github.com/semrpc/semrpc/semantics"
)

// fakeClock is a settable clock for the Coordinator.
type fakeClock struct {
	mu  sync.Mutex // protects now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func lease(t *testing.T, c *Coordinator, worker string) LeaseReply {
	t.Helper()
	var r LeaseReply
	if err := c.Lease(LeaseArgs{Worker: worker}, &r); err != nil {
		t.Fatalf("Lease(%s): %v", worker, err)
	}
	return r
}

func report(t *testing.T, c *Coordinator, args ReportArgs) ReportStatus {
	t.Helper()
	var r ReportReply
	if err := c.Report(args, &r); err != nil {
		t.Fatalf("Report(%+v): %v", args, err)
	}
	return r.Status
}

func TestCoordinator(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "a", LeaseTimeout: 10 * time.Second,
		PollInterval: 50 * time.Millisecond, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}

	a := lease(t, c, "w1")
	if a.Task.URL != "a" || a.Task.ID == 0 {
		t.Fatalf("first lease = %+v, want a", a)
	}
	if again := lease(t, c, "w1"); again.Task != a.Task {
		t.Errorf("retried lease = %+v, want the lease w1 holds, %+v", again.Task, a.Task)
	}
	idle := lease(t, c, "w2")
	if idle.Task.ID != 0 || idle.Done || idle.Wait <= 0 || idle.Wait > 50*time.Millisecond {
		t.Errorf("lease with an empty frontier = %+v, want a wait of at most the poll interval", idle)
	}
	var rr ReportReply
	if err := c.Report(ReportArgs{TaskID: a.Task.ID, URL: "b", Attempt: 1}, &rr); err == nil {
		t.Error("report naming the wrong URL: no error")
	}
	if err := c.Lease(LeaseArgs{}, &LeaseReply{}); err == nil {
		t.Error("lease without a worker name: no error")
	}
	if got := report(t, c, ReportArgs{TaskID: a.Task.ID, URL: "a", Links: []string{"b", "c", "a"}, Attempt: 1}); got != Accepted {
		t.Fatalf("report a = %v, want accepted", got)
	}
	if got := report(t, c, ReportArgs{TaskID: 999, URL: "zzz", Attempt: 1}); got != UnknownTask {
		t.Errorf("report of an unknown task = %v", got)
	}

	b := lease(t, c, "w1") // a is reported: w1 gets a new task
	cc := lease(t, c, "w2")
	if b.Task.URL != "b" || cc.Task.URL != "c" {
		t.Fatalf("leases = %q, %q, want b, c", b.Task.URL, cc.Task.URL)
	}
	clock.advance(5 * time.Second)
	if got := lease(t, c, "w2"); got.Task != cc.Task {
		t.Errorf("lease before the deadline = %+v, want the held %+v", got.Task, cc.Task)
	}
	if got := report(t, c, ReportArgs{TaskID: cc.Task.ID, URL: "c", Err: "404", Attempt: 1}); got != Accepted {
		t.Errorf("failed report = %v", got)
	}
	clock.advance(6 * time.Second) // b's lease has expired
	b2 := lease(t, c, "w3")
	if b2.Task.URL != "b" || b2.Task.ID == b.Task.ID {
		t.Fatalf("after expiry lease = %+v, want b under a new ID", b2.Task)
	}
	if got := lease(t, c, "w1"); got.Task.ID != 0 {
		t.Errorf("w1's expired lease handed back: %+v", got.Task)
	}
	// w1 was only slow: its report is first and counts; w3's is a duplicate.
	if got := report(t, c, ReportArgs{TaskID: b.Task.ID, URL: "b", Attempt: 1}); got != Accepted {
		t.Errorf("late report = %v, want accepted", got)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after every URL was reported")
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	if got := report(t, c, ReportArgs{TaskID: b2.Task.ID, URL: "b", Attempt: 1}); got != Duplicate {
		t.Errorf("second report of b = %v, want duplicate", got)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check after a duplicate from another task: %v", err)
	}
	if got := lease(t, c, "w1"); !got.Done {
		t.Errorf("lease after the crawl = %+v, want Done", got)
	}

	fetched, failed := c.Result()
	if !slices.Equal(fetched, []string{"a", "b"}) || !maps.Equal(failed, map[string]string{"c": "404"}) {
		t.Errorf("Result = %q, %q", fetched, failed)
	}
	st := c.Stats()
	want := CoordinatorStats{
		SchedulerStats: SchedulerStats{Pages: 2, Failed: 1, Leases: 4, Reassigned: 1, Duplicates: 1, RepeatedLeases: 2},
		Reports:        6,
	}
	if st != want {
		t.Errorf("Stats = %+v\nwant    %+v", st, want)
	}

	// The same report executed twice is what at-most-once must prevent.
	report(t, c, ReportArgs{TaskID: b2.Task.ID, URL: "b", Attempt: 1})
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "executed more than once") {
		t.Errorf("Check after a re-executed report = %v", err)
	}
}

func TestCoordinatorCheckUnfinished(t *testing.T) {
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "a"})
	if err != nil {
		t.Fatal(err)
	}
	lease(t, c, "w")
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "1 leased") {
		t.Errorf("Check of an unfinished crawl = %v", err)
	}
}

func TestDistributedConfigValidate(t *testing.T) {
	f := StaticFetcher{}
	tests := []struct {
		name string
		cfg  DistributedConfig
	}{
		{"no fetcher", DistributedConfig{StartURL: "a"}},
		{"no start", DistributedConfig{Fetcher: f}},
		{"negative workers", DistributedConfig{StartURL: "a", Fetcher: f, Workers: -1}},
		{"loss 1", DistributedConfig{StartURL: "a", Fetcher: f, Network: &labnet.Network{Loss: 1}}},
		{"negative loss", DistributedConfig{StartURL: "a", Fetcher: f, Network: &labnet.Network{Loss: -0.1}}},
		{"duplicate 2", DistributedConfig{StartURL: "a", Fetcher: f, Network: &labnet.Network{Duplicate: 2}}},
		{"negative lease", DistributedConfig{StartURL: "a", Fetcher: f, LeaseTimeout: -time.Second}},
		{"negative poll", DistributedConfig{StartURL: "a", Fetcher: f, PollInterval: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DistributedCrawl(context.Background(), tt.cfg); err == nil {
				t.Error("no error")
			}
		})
	}
}

// checkDistributedSite asserts that a distributed crawl of site reported
// each reachable page exactly once and fetched nothing it must not. With
// exact, each page must also have been fetched exactly once.
func checkDistributedSite(t *testing.T, site *Site, srv *httptest.Server, res DistributedResult, exact bool) {
	t.Helper()
	if res.Check != nil {
		t.Errorf("Check: %v", res.Check)
	}
	var want []string
	for _, p := range site.Reachable() {
		if !slices.Contains(site.NoIndex(), p) {
			want = append(want, srv.URL+p)
		}
		served := site.Served(p)
		if served < 1 || (exact && served > 1) {
			t.Errorf("%s served %d times", p, served)
		}
	}
	slices.Sort(want)
	if !slices.Equal(res.Fetched, want) {
		t.Errorf("reported %d pages fetched, want the %d reachable ones", len(res.Fetched), len(want))
	}
	if wantNo := prefixed(srv.URL, site.NoIndex()); !slices.Equal(res.NoIndex, wantNo) {
		t.Errorf("reported noindex %q, want %q", res.NoIndex, wantNo)
	}
	for _, p := range site.Flaky() {
		if got := site.Hits(p); got < 2 {
			t.Errorf("flaky %s requested %d times, want its 503 and then a 200", p, got)
		}
	}
	if len(res.Failed) != len(site.Missing()) {
		t.Errorf("failed = %v, want only the missing pages", res.Failed)
	}
	for _, p := range site.Missing() {
		if msg, ok := res.Failed[srv.URL+p]; !ok || !strings.Contains(msg, "404") {
			t.Errorf("missing %s: reported error %q, want a 404", p, msg)
		}
	}
	for _, p := range append(site.Disallowed(), site.Unlinked()...) {
		if got := site.Hits(p); got != 0 {
			t.Errorf("%s must never be fetched, requested %d times", p, got)
		}
	}
	if got := site.Hits("/robots.txt"); got != 1 {
		t.Errorf("robots.txt requested %d times, want 1", got)
	}
	st := res.Coordinator
	if st.Pages != len(site.Reachable()) || st.Failed != len(site.Missing()) || st.AcceptedTwice != 0 || st.ReexecutedReports != 0 {
		t.Errorf("coordinator stats %+v", st)
	}
	if res.Workers.Fetches < len(want) || res.Fetcher.Retries < int64(len(site.Flaky())) {
		t.Errorf("%d fetches, %d fetch retries: want at least %d and %d",
			res.Workers.Fetches, res.Fetcher.Retries, len(want), len(site.Flaky()))
	}
}

func TestDistributedCrawlSite(t *testing.T) {
	tests := []struct {
		name  string
		cfg   DistributedConfig
		lossy bool
	}{
		{"tcp", DistributedConfig{}, false},
		{"labrpc", DistributedConfig{Network: &labnet.Network{Seed: 11}}, false},
		{"labrpc-lossy", DistributedConfig{Network: &labnet.Network{Loss: 0.1, Duplicate: 0.1,
			MaxDelay: 2 * time.Millisecond, Seed: 11}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := NewSite(300, 11)
			srv := startSite(t, site)
			cfg := tt.cfg
			cfg.StartURL = srv.URL + "/"
			cfg.Fetcher = newPolite(t, fastRetries())
			cfg.Workers = 4
			var progress int
			cfg.Progress = func(DistributedProgress) { progress++ }
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := DistributedCrawl(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The lease timeout is far longer than a fetch and a retried
			// lease returns the same task, so no page is fetched twice even
			// on the lossy network.
			t.Logf("%d pages in %v: %d fetches, %d fetch retries, %d rpc attempts, %d rpc retries, %d repeated leases, %d reports suppressed by the table",
				res.Coordinator.Pages, res.Elapsed, res.Workers.Fetches, res.Fetcher.Retries, res.RPCAttempts, res.RPCRetries,
				res.Coordinator.RepeatedLeases, res.TableDuplicates)
			checkDistributedSite(t, site, srv, res, true)
			if progress == 0 {
				t.Error("Progress never called")
			}
			if res.Coordinator.Reassigned != 0 {
				t.Errorf("%d leases reassigned, want none", res.Coordinator.Reassigned)
			}
			if !tt.lossy {
				if res.RPCRetries != 0 || res.TableDuplicates != 0 {
					t.Errorf("reliable network: %d rpc retries, %d table duplicates", res.RPCRetries, res.TableDuplicates)
				}
				return
			}
			// About 700 calls lost or duplicated at 10%: these are certain.
			if res.RPCRetries == 0 || res.TableDuplicates == 0 || res.Coordinator.RepeatedLeases == 0 {
				t.Errorf("lossy network: %d rpc retries, %d duplicate reports suppressed, %d repeated leases; want some of each",
					res.RPCRetries, res.TableDuplicates, res.Coordinator.RepeatedLeases)
			}
		})
	}
}

// TestDistributedReportsNeedAtMostOnce runs reports over a network that
// duplicates requests: at-most-once runs each report once; at-least-once
// runs some twice, which the Scheduler ignores but Check reports.
func TestDistributedReportsNeedAtMostOnce(t *testing.T) {
	web, reachable := randomGraph(200, 5)
	tests := []struct {
		name   string
		policy semantics.Policy
		want   bool // want every report executed once
	}{
		{"at-most-once", nil, true},
		{"at-least-once", semantics.AtLeastOnce(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCounting(web)
			res, err := DistributedCrawl(context.Background(), DistributedConfig{
				StartURL: "p/0", Fetcher: f, Workers: 4,
				Network: &labnet.Network{Duplicate: 0.5, Loss: 0.05, Seed: 5}, reportPolicy: tt.policy,
			})
			if err != nil {
				t.Fatal(err)
			}
			var ok []string
			for u := range reachable {
				if _, found := web[u]; found {
					ok = append(ok, u)
				}
			}
			slices.Sort(ok)
			if !slices.Equal(res.Fetched, ok) || len(res.Fetched)+len(res.Failed) != len(reachable) {
				t.Errorf("reported %d fetched, %d failed; want %d and %d",
					len(res.Fetched), len(res.Failed), len(ok), len(reachable)-len(ok))
			}
			calls, _, _ := f.snapshot()
			for u, n := range calls {
				if n != 1 {
					t.Errorf("%s fetched %d times", u, n)
				}
			}
			st := res.Coordinator
			if st.AcceptedTwice != 0 {
				t.Errorf("%d URLs accepted twice", st.AcceptedTwice)
			}
			if tt.want {
				if res.Check != nil || st.ReexecutedReports != 0 || res.TableDuplicates == 0 {
					t.Errorf("Check = %v, %d reports re-executed, %d suppressed by the table",
						res.Check, st.ReexecutedReports, res.TableDuplicates)
				}
				return
			}
			if res.Check == nil || st.ReexecutedReports == 0 || st.Duplicates < st.ReexecutedReports {
				t.Errorf("Check = %v, %d reports re-executed, %d ignored as duplicates: want the re-executions caught",
					res.Check, st.ReexecutedReports, st.Duplicates)
			}
		})
	}
}

// TestDistributedWorkerDiesMidLease has a worker lease the start URL and die
// without reporting: the lease expires, another worker fetches the URL, and
// the crawl completes with every URL reported once.
func TestDistributedWorkerDiesMidLease(t *testing.T) {
	for _, network := range []struct {
		name string
		net  Network
	}{{"tcp", nil}, {"labrpc", &labnet.Network{}}} {
		t.Run(network.name, func(t *testing.T) {
			web, reachable := randomGraph(100, 9)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg := DistributedConfig{StartURL: "p/0", Network: network.net, LeaseTimeout: 200 * time.Millisecond}
			cl, err := startCluster(ctx, &cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.close()

			zctx, die := context.WithCancel(ctx)
			var leased string
			crash := FetcherFunc(func(ctx context.Context, url string) ([]string, error) {
				leased = url
				die()
				return nil, ctx.Err()
			})
			if _, err := RunWorker(zctx, cl.clients[0], crash, "doomed"); !errors.Is(err, context.Canceled) {
				t.Fatalf("doomed worker returned %v", err)
			}
			if leased != "p/0" {
				t.Fatalf("doomed worker leased %q", leased)
			}

			start := time.Now()
			f := newCounting(web)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = RunWorker(ctx, cl.clients[i+1], f, workerName(i+1))
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Errorf("crawl finished after %v, before the dead lease could expire", d)
			}
			if err := cl.coord.Check(); err != nil {
				t.Error(err)
			}
			st := cl.coord.Stats()
			if st.Reassigned != 1 {
				t.Errorf("%d leases reassigned, want 1", st.Reassigned)
			}
			fetched, failed := cl.coord.Result()
			if len(fetched)+len(failed) != len(reachable) || !slices.Contains(fetched, "p/0") {
				t.Errorf("reported %d URLs, want %d including p/0", len(fetched)+len(failed), len(reachable))
			}
			calls, _, _ := f.snapshot()
			if calls["p/0"] != 1 {
				t.Errorf("p/0 fetched %d times by the live workers, want 1", calls["p/0"])
			}
		})
	}
}

func TestDistributedCrawlCancel(t *testing.T) {
	block := FetcherFunc(func(ctx context.Context, url string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := DistributedCrawl(ctx, DistributedConfig{StartURL: "a", Fetcher: block, Workers: 2})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	if res.Check == nil {
		t.Error("Check passed on an unfinished crawl")
	}
}
