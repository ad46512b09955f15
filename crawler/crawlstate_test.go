package crawler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// disk stands in for a CrawlStore: the last record written for each key.
type disk struct {
	urls  map[string]urlRecord
	hosts map[string]hostRecord
	meta  metaRecord
}

func (d *disk) write(c changes) {
	for _, r := range c.urls {
		d.urls[r.URL] = r
	}
	for _, r := range c.hosts {
		d.hosts[r.Host] = r
	}
	if c.meta != nil {
		d.meta = *c.meta
	}
}

func (d *disk) restore(t *testing.T, cfg SchedulerConfig) *Scheduler {
	t.Helper()
	s, err := restoreScheduler(cfg, slices.Collect(maps.Values(d.urls)), slices.Collect(maps.Values(d.hosts)), d.meta)
	if err != nil {
		t.Fatal(err)
	}
	s.startJournal()
	s.takeChanges()
	return s
}

// TestSchedulerRestoredFromJournalBehavesTheSame crawls a random three-host
// graph with workers that die and report late, writes the journal after
// every call, and every few hundred steps replaces the Scheduler by one
// rebuilt from what was written: the rebuilt one must have the same
// counters, outcomes and next lease, and the crawl must end with every
// reachable URL done exactly once.
func TestSchedulerRestoredFromJournalBehavesTheSame(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			web, reachable := randomGraph(300, seed)
			toURL := func(p string) string {
				var n int
				fmt.Sscanf(p[strings.IndexByte(p, '/')+1:], "%d", &n)
				return fmt.Sprintf("http://h%d/%s", n%3, p)
			}
			rng := rand.New(rand.NewSource(seed))
			const lease = 10 * time.Second
			cfg := SchedulerConfig{LeaseTimeout: lease, HostLimit: 2, HostDelay: 100 * time.Millisecond,
				MaxRetries: 1, RetryDelay: time.Second}
			s, _ := NewSchedulerURLs([]string{toURL("p/0")}, cfg)
			s.startJournal()
			d := &disk{urls: map[string]urlRecord{}, hosts: map[string]hostRecord{}}
			d.write(s.takeChanges())
			now := time.Unix(0, 0)
			type pending struct {
				task Task
				at   time.Time
			}
			var inFlight []pending
			accepted := map[string]int{}
			retried := map[string]bool{}
			restores := 0
			for step := 0; !s.Done(); step++ {
				if step > 100000 {
					t.Fatalf("no termination; stats %+v", s.Stats())
				}
				if step%300 == 299 {
					r := d.restore(t, cfg)
					if got, want := r.Stats(), s.Stats(); got != want {
						t.Fatalf("step %d: restored stats %+v\nwant %+v", step, got, want)
					}
					if !slices.Equal(r.Fetched(), s.Fetched()) || !slices.Equal(r.Failures(), s.Failures()) {
						t.Fatalf("step %d: restored outcomes differ", step)
					}
					t1, ok1 := s.Lease("probe", now)
					t2, ok2 := r.Lease("probe", now)
					if ok1 != ok2 || t1 != t2 {
						t.Fatalf("step %d: next lease %+v, %v; restored %+v, %v", step, t1, ok1, t2, ok2)
					}
					if ok1 {
						inFlight = append(inFlight, pending{t2, now.Add(time.Second)})
					}
					s = r
					d.write(s.takeChanges())
					restores++
				}
				now = now.Add(time.Duration(rng.Intn(300)) * time.Millisecond)
				if task, ok := s.Lease(fmt.Sprintf("w%d", rng.Intn(6)), now); ok {
					switch r := rng.Intn(20); {
					case r == 0: // dies
					case r == 1: // late
						inFlight = append(inFlight, pending{task, now.Add(lease + time.Duration(rng.Intn(5))*time.Second)})
					default:
						inFlight = append(inFlight, pending{task, now.Add(time.Duration(rng.Intn(900)) * time.Millisecond)})
					}
				}
				d.write(s.takeChanges())
				keep := inFlight[:0]
				for _, p := range inFlight {
					if p.at.After(now) {
						keep = append(keep, p)
						continue
					}
					path := p.task.URL[strings.Index(p.task.URL, "/p/")+1:]
					links, err := web.Fetch(context.Background(), path)
					var status ReportStatus
					switch {
					case err != nil:
						status = s.FailWith(p.task.ID, err.Error(), now)
					case !retried[p.task.URL] && rng.Intn(15) == 0: // a 503, once per URL
						retried[p.task.URL] = true
						status = s.Retry(p.task.ID, "503", 0, now)
					default:
						for i, l := range links {
							links[i] = toURL(l)
						}
						status = s.Report(p.task.ID, links, now)
					}
					if status == Accepted {
						accepted[p.task.URL]++
					}
					d.write(s.takeChanges())
				}
				inFlight = keep
			}
			if restores == 0 {
				t.Fatal("the crawl ended before any restore")
			}
			for u := range reachable {
				if accepted[toURL(u)] != 1 {
					st := s.urls[toURL(u)]
					t.Errorf("%s accepted %d times; state %+v", u, accepted[toURL(u)], st)
				}
			}
			if r := d.restore(t, cfg); !r.Done() || r.Stats() != s.Stats() {
				t.Errorf("restored at the end: done %v, stats %+v, want %+v", r.Done(), r.Stats(), s.Stats())
			}
		})
	}
}

// TestCoordinatorResumesFromStore: a coordinator on a CrawlStore, dropped
// without closing anything but the file (as if killed), and a new one on
// the same store: reported pages are not leased again, a worker's current
// lease is handed back to it, and the crawl ends with every URL done once.
func TestCoordinatorResumesFromStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by OpenCrawlStore
	clock := &fakeClock{now: time.Unix(1000, 0)}
	open := func(starts ...string) (*CrawlStore, *Coordinator) {
		t.Helper()
		st, err := OpenCrawlStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCoordinator(CoordinatorConfig{StartURLs: starts, LeaseTimeout: 10 * time.Second,
			HostLimit: 2, Store: st, Now: clock.Now})
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		return st, c
	}
	st, c := open("http://h/a")
	a := lease(t, c, "w1")
	report(t, c, ReportArgs{TaskID: a.Task.ID, URL: "http://h/a", Links: []string{"http://h/b", "http://h/c", "http://h/d"}, Attempt: 1})
	b := lease(t, c, "w1")
	cc := lease(t, c, "w2")
	report(t, c, ReportArgs{TaskID: b.Task.ID, URL: b.Task.URL, Err: "404", Attempt: 1})
	st.Close() // killed: the Coordinator is abandoned

	st2, c2 := reopen(t, dir, clock)
	defer st2.Close()
	if got := c2.Stats(); got.Pages != 1 || got.Failed != 1 || got.Leased != 1 || got.Queued != 1 || got.Restarts != 1 {
		t.Fatalf("resumed stats %+v", got)
	}
	if got := lease(t, c2, "w2"); got.Task.ID != cc.Task.ID || !got.Task.Deadline.Equal(cc.Task.Deadline) {
		t.Errorf("w2 after the restart got %+v, want its lease %+v", got.Task, cc.Task)
	}
	d := lease(t, c2, "w3")
	if d.Task.URL != "http://h/d" {
		t.Fatalf("w3 got %+v, want d (a and b are done, c is w2's)", d.Task)
	}
	if got := lease(t, c2, "w4"); got.Task.ID != 0 {
		t.Errorf("w4 got %+v: nothing is left", got.Task)
	}
	report(t, c2, ReportArgs{TaskID: cc.Task.ID, URL: cc.Task.URL, Attempt: 1})
	report(t, c2, ReportArgs{TaskID: d.Task.ID, URL: d.Task.URL, Attempt: 1})
	select {
	case <-c2.Done():
	default:
		t.Fatal("not done")
	}
	if err := c2.Check(); err != nil {
		t.Error(err)
	}
	fetched, failed := c2.Result()
	if !slices.Equal(fetched, []string{"http://h/a", "http://h/c", "http://h/d"}) || failed["http://h/b"] != "404" {
		t.Errorf("result %v %v", fetched, failed)
	}
}

func reopen(t *testing.T, dir string, clock *fakeClock) (*CrawlStore, *Coordinator) {
	t.Helper()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCoordinator(CoordinatorConfig{LeaseTimeout: 10 * time.Second, HostLimit: 2, Store: st, Now: clock.Now})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, c
}

func TestOpenCrawlStoreErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CrawlStoreFile), []byte("not a bolt file, certainly not"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCrawlStore(dir); err == nil {
		t.Error("a file that is not bbolt opened")
	}

	dir = t.TempDir()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := NewCoordinator(CoordinatorConfig{Store: st}); err == nil {
		t.Error("a coordinator on an empty store without a start URL")
	}
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/", Store: st})
	if err != nil || c == nil {
		t.Fatal(err)
	}
	if _, err := NewCoordinator(CoordinatorConfig{StartURL: "http://other/", Store: st}); err == nil ||
		!strings.Contains(err.Error(), "holds a crawl") {
		t.Errorf("another start URL on a store with a crawl: %v", err)
	}
	if f := filepath.Join(t.TempDir(), "file"); os.WriteFile(f, nil, 0o644) == nil {
		if _, err := OpenCrawlStore(f); err == nil || errors.Is(err, ErrCrawlStoreLocked) {
			t.Errorf("a data directory that is a file: %v", err)
		}
	}
}

func TestOpenCrawlStoreInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if second, err := OpenCrawlStore(dir); !errors.Is(err, ErrCrawlStoreLocked) {
		if second != nil {
			second.Close()
		}
		t.Errorf("second open of a store in use: %v, want ErrCrawlStoreLocked", err)
	}
}

// TestCoordinatorGroupCommitKeepsEveryAnswer: workers call a durable
// Coordinator concurrently (their writes share transactions); after the
// crawl, a Coordinator made on the same store has the same outcome and
// counters, so every answer was stored, in order.
func TestCoordinatorGroupCommitKeepsEveryAnswer(t *testing.T) {
	web, reachable := randomGraph(300, 5)
	dir := t.TempDir()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "p/0", Store: st, LeaseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d", w)
			for {
				var lr LeaseReply
				if err := c.Lease(LeaseArgs{Worker: name}, &lr); err != nil {
					t.Error(err)
					return
				}
				if lr.Done {
					return
				}
				if lr.Task.ID == 0 {
					time.Sleep(lr.Wait)
					continue
				}
				links, err := web.Fetch(context.Background(), lr.Task.URL)
				args := ReportArgs{TaskID: lr.Task.ID, URL: lr.Task.URL, Links: links, Attempt: 1}
				if err != nil {
					args.Err = err.Error()
				}
				if err := c.Report(args, &ReportReply{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	// Its report made, the crawl is only read when opened again (a crawl
	// whose coordinator died before its report counts a restart).
	if err := c.MarkReported(); err != nil {
		t.Fatal(err)
	}
	want := c.Stats()
	wantFetched, wantFailed := c.Result()
	st.Close()

	st2, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	c2, err := NewCoordinator(CoordinatorConfig{Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	got := c2.Stats() // a finished, reported crawl opened again: not a restart
	if got != want {
		t.Errorf("reopened stats %+v\nwant %+v", got, want)
	}
	fetched, failed := c2.Result()
	if !slices.Equal(fetched, wantFetched) || !maps.Equal(failed, wantFailed) || len(fetched)+len(failed) != len(reachable) {
		t.Errorf("reopened result: %d fetched, %d failed; want %d and %d (%d reachable)",
			len(fetched), len(failed), len(wantFetched), len(wantFailed), len(reachable))
	}
	if err := c2.Check(); err != nil {
		t.Error(err)
	}
	select {
	case <-c2.Done():
	default:
		t.Error("reopened coordinator: crawl not over")
	}
}

func TestDurableCoordinatorDropsLinksItCannotStore(t *testing.T) {
	st, err := OpenCrawlStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	a := lease(t, c, "w1")
	long := "http://h/" + strings.Repeat("x", MaxURLLength)
	if got := report(t, c, ReportArgs{TaskID: a.Task.ID, URL: a.Task.URL, Attempt: 1,
		Links: []string{"", long, "not a url", "http://h/ok"}}); got != Accepted {
		t.Fatalf("report = %v", got)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("coordinator broken by bad links: %v", err)
	}
	if got := c.Stats().Queued; got != 2 {
		t.Errorf("%d queued, want 2 (\"not a url\" and http://h/ok)", got)
	}
	if _, err := NewCoordinator(CoordinatorConfig{StartURL: long}); err == nil {
		t.Error("a start URL over MaxURLLength accepted")
	}
}
