package crawler

import (
	"slices"
	"testing"
	"time"
)

// hostStep is one call on a Scheduler with per-host slots. Exactly one of
// lease, report, retry, pace or release is set.
type hostStep struct {
	at time.Duration

	lease   string // worker: call Lease
	as      string // name for the leased task
	wantURL string // "" means none

	report string // task name: call Report with links
	links  []string

	retry      string // task name: call Retry
	wait       time.Duration
	wantStatus ReportStatus

	pace     string // host: call Pace
	hostPace HostPace

	release string // worker: call Release

	wantNext time.Duration // if set, NextEvent must be t0+wantNext
}

func TestSchedulerHostSlots(t *testing.T) {
	const (
		a1 = "http://h1/a"
		b1 = "http://h1/b"
		c1 = "http://h1/c"
		d1 = "http://h1/d"
		a2 = "http://h2/a"
		b2 = "http://h2/b"
	)
	tests := []struct {
		name   string
		cfg    SchedulerConfig
		starts []string
		steps  []hostStep
		want   SchedulerStats
	}{
		{
			name:   "a host no worker reported on gets one slot, then its limit",
			cfg:    SchedulerConfig{HostLimit: 2},
			starts: []string{a1, b1},
			steps: []hostStep{
				{lease: "w1", as: "a", wantURL: a1},
				{lease: "w2", wantURL: ""}, // robots.txt not read yet: one request at a time
				{report: "a", links: []string{c1, d1}},
				{lease: "w2", as: "b", wantURL: b1},
				{lease: "w3", as: "c", wantURL: c1},
				{lease: "w4", wantURL: ""}, // two out: the limit
				{report: "b"},
				{lease: "w4", as: "d", wantURL: d1},
				{report: "c"},
				{report: "d"},
			},
			want: SchedulerStats{Pages: 4, Leases: 4},
		},
		{
			name:   "hosts are leased round-robin, each within its own limit",
			cfg:    SchedulerConfig{HostLimit: 1},
			starts: []string{a1, b1, a2},
			steps: []hostStep{
				{lease: "w1", as: "a1", wantURL: a1},
				{lease: "w2", as: "a2", wantURL: a2},
				{lease: "w3", wantURL: ""},
				{report: "a1"},
				{lease: "w3", as: "b1", wantURL: b1},
				{report: "a2", links: []string{b2}},
				{lease: "w1", as: "b2", wantURL: b2},
				{report: "b1"},
				{report: "b2"},
			},
			want: SchedulerStats{Pages: 4, Leases: 4},
		},
		{
			// Issue 12: a 300 ms host delay with 1 s leases re-fetched 8 of 34
			// URLs, because leases ran while their URL waited for the host.
			name:   "lease time does not run while a URL waits for its host's delay",
			cfg:    SchedulerConfig{LeaseTimeout: time.Second, HostDelay: 300 * time.Millisecond},
			starts: []string{a1, b1, c1, d1},
			steps: []hostStep{
				{lease: "w1", as: "a", wantURL: a1},
				{lease: "w2", wantURL: ""}, // one lease at a time on a host with a delay
				{at: 250 * time.Millisecond, report: "a"},
				{at: 250 * time.Millisecond, lease: "w2", wantURL: "", wantNext: 300 * time.Millisecond},
				{at: 300 * time.Millisecond, lease: "w2", as: "b", wantURL: b1},
				{at: 550 * time.Millisecond, report: "b"},
				{at: 600 * time.Millisecond, lease: "w3", as: "c", wantURL: c1},
				{at: 850 * time.Millisecond, report: "c"},
				{at: 900 * time.Millisecond, lease: "w4", as: "d", wantURL: d1},
				{at: 1150 * time.Millisecond, report: "d"}, // w4 waited since 0, its lease since 900ms
			},
			want: SchedulerStats{Pages: 4, Leases: 4},
		},
		{
			name:   "a reported Crawl-delay spaces the host's leases, one at a time",
			cfg:    SchedulerConfig{HostLimit: 4},
			starts: []string{a1, b1, c1},
			steps: []hostStep{
				{lease: "w1", as: "a", wantURL: a1},
				{pace: "h1", hostPace: HostPace{Delay: time.Second, Wait: 900 * time.Millisecond}},
				{report: "a"},
				{at: 100 * time.Millisecond, lease: "w1", wantURL: "", wantNext: 900 * time.Millisecond},
				{at: 900 * time.Millisecond, lease: "w1", as: "b", wantURL: b1},
				{at: 900 * time.Millisecond, lease: "w2", wantURL: ""}, // one lease at a time
				{at: 950 * time.Millisecond, pace: "h1", hostPace: HostPace{Delay: time.Second, Wait: 950 * time.Millisecond}},
				{at: 950 * time.Millisecond, report: "b"},
				{at: 1000 * time.Millisecond, lease: "w2", wantURL: "", wantNext: 1900 * time.Millisecond},
				{at: 1900 * time.Millisecond, lease: "w2", as: "c", wantURL: c1},
				{at: 2 * time.Second, report: "c"},
			},
			want: SchedulerStats{Pages: 3, Leases: 3},
		},
		{
			name:   "Retry-After keeps every worker off the host, not only the URL",
			cfg:    SchedulerConfig{HostLimit: 2, MaxRetries: 3, RetryDelay: 10 * time.Millisecond},
			starts: []string{a1, a2, b1},
			steps: []hostStep{
				{lease: "w1", as: "a1", wantURL: a1},
				{lease: "w2", as: "a2", wantURL: a2},
				{pace: "h1", hostPace: HostPace{Wait: 5 * time.Second}},
				{retry: "a1", wait: 5 * time.Second, wantStatus: Requeued},
				{lease: "w1", wantURL: "", wantNext: 5 * time.Second}, // b1 waits with a1
				{report: "a2"},
				{at: 5 * time.Second, lease: "w1", as: "b", wantURL: b1}, // a1 went to the back
				{at: 5 * time.Second, lease: "w2", as: "a1again", wantURL: a1},
				{at: 6 * time.Second, report: "a1again"},
				{at: 6 * time.Second, report: "b"},
			},
			want: SchedulerStats{Pages: 3, Leases: 4, Retried: 1},
		},
		{
			name:   "a transient failure is retried after a growing delay, then fails for good",
			cfg:    SchedulerConfig{MaxRetries: 2, RetryDelay: 100 * time.Millisecond},
			starts: []string{a1},
			steps: []hostStep{
				{lease: "w1", as: "t1", wantURL: a1},
				{retry: "t1", wantStatus: Requeued},
				{at: 50 * time.Millisecond, lease: "w1", wantURL: "", wantNext: 100 * time.Millisecond},
				{at: 100 * time.Millisecond, lease: "w1", as: "t2", wantURL: a1},
				{at: 100 * time.Millisecond, retry: "t2", wantStatus: Requeued},
				{at: 299 * time.Millisecond, lease: "w1", wantURL: ""},
				{at: 300 * time.Millisecond, lease: "w1", as: "t3", wantURL: a1},
				{at: 300 * time.Millisecond, retry: "t3", wantStatus: Accepted}, // third failure: given up
				{at: 300 * time.Millisecond, retry: "t1", wantStatus: Duplicate},
			},
			want: SchedulerStats{Failed: 1, Leases: 3, Retried: 2, Duplicates: 1},
		},
		{
			name:   "a released lease is queued again at once",
			starts: []string{a1},
			steps: []hostStep{
				{lease: "w1", as: "t1", wantURL: a1},
				{release: "w1"},
				{lease: "w2", as: "t2", wantURL: a1},
				{report: "t2"},
			},
			want: SchedulerStats{Pages: 1, Leases: 2, Released: 1},
		},
		{
			name:   "links to hosts outside Hosts are dropped, not to their www variant",
			cfg:    SchedulerConfig{Hosts: []string{"h1"}},
			starts: []string{a1},
			steps: []hostStep{
				{lease: "w1", as: "a", wantURL: a1},
				{report: "a", links: []string{a2, b1, "https://www.h1/", "http://www.h2/"}},
				{lease: "w1", as: "www", wantURL: "https://www.h1/"}, // round-robin: the next host
				{lease: "w2", as: "b", wantURL: b1},
				{report: "b"},
				{report: "www"},
			},
			want: SchedulerStats{Pages: 3, Leases: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.LeaseTimeout == 0 {
				cfg.LeaseTimeout = time.Minute
			}
			s, err := NewSchedulerURLs(tt.starts, cfg)
			if err != nil {
				t.Fatal(err)
			}
			runHostSteps(t, s, tt.steps)
			if !s.Done() {
				t.Errorf("not done after the last step: %+v", s.Stats())
			}
			if got := s.Stats(); got != tt.want {
				t.Errorf("stats = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

var hostT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func runHostSteps(t *testing.T, s *Scheduler, steps []hostStep) {
	t.Helper()
	tasks := map[string]Task{}
	for i, st := range steps {
		now := hostT0.Add(st.at)
		switch {
		case st.lease != "":
			task, ok := s.Lease(st.lease, now)
			if ok != (st.wantURL != "") || task.URL != st.wantURL {
				t.Fatalf("step %d: Lease(%s) = %q, %v; want %q", i, st.lease, task.URL, ok, st.wantURL)
			}
			if ok {
				tasks[st.as] = task
			}
		case st.report != "":
			if got := s.Report(tasks[st.report].ID, st.links, now); got != Accepted {
				t.Fatalf("step %d: Report(%s) = %v", i, st.report, got)
			}
		case st.retry != "":
			if got := s.Retry(tasks[st.retry].ID, "503", st.wait, now); got != st.wantStatus {
				t.Fatalf("step %d: Retry(%s) = %v, want %v", i, st.retry, got, st.wantStatus)
			}
		case st.pace != "":
			s.Pace(st.pace, st.hostPace, now)
		case st.release != "":
			if !s.Release(st.release) {
				t.Fatalf("step %d: Release(%s) = false", i, st.release)
			}
		}
		if st.wantNext != 0 {
			if next, ok := s.NextEvent(now); !ok || !next.Equal(hostT0.Add(st.wantNext)) {
				t.Fatalf("step %d: NextEvent = +%v, %v; want +%v", i, next.Sub(hostT0), ok, st.wantNext)
			}
		}
		for host, n := range s.HostsInFlight() {
			if limit := s.hostLimit(s.hosts[host]); limit > 0 && n > limit {
				t.Fatalf("step %d: %s has %d leases out, limit %d", i, host, n, limit)
			}
		}
	}
}

func TestSchedulerFailures(t *testing.T) {
	s, _ := NewSchedulerURLs([]string{"http://h/b", "http://h/a"}, SchedulerConfig{LeaseTimeout: time.Minute})
	b, _ := s.Lease("w1", hostT0)
	a, _ := s.Lease("w2", hostT0)
	s.FailWith(b.ID, "404 Not Found", hostT0)
	s.FailWith(a.ID, "disallowed", hostT0)
	want := []Failure{{URL: "http://h/a", Reason: "disallowed"}, {URL: "http://h/b", Reason: "404 Not Found"}}
	if got := s.Failures(); !slices.Equal(got, want) {
		t.Errorf("Failures = %v, want %v", got, want)
	}
}

// A URL retried because its host's robots.txt could not be read
// (ReportArgs.HostWide) holds the whole host until its retry is due: the
// host's other URLs are not leased meanwhile, each to fail the same way
// and send the struggling host one more robots.txt request. Without
// HostWide only the URL waits.
func TestHostWideRetryHoldsTheHostUntilTheRetryIsDue(t *testing.T) {
	for _, hostWide := range []bool{true, false} {
		t.Run(map[bool]string{true: "host-wide", false: "the URL only"}[hostWide], func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1000, 0)}
			c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b", "http://h/c"},
				LeaseTimeout: time.Minute, HostLimit: 2, MaxRetries: 2, RetryDelay: time.Second, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			a := lease(t, c, "w1")
			if a.Task.URL != "http://h/a" {
				t.Fatalf("first lease %+v, want h/a", a.Task)
			}
			if st := report(t, c, ReportArgs{TaskID: a.Task.ID, URL: a.Task.URL, Err: "robots.txt unavailable",
				Retry: true, HostWide: hostWide, Attempt: 1}); st != Requeued {
				t.Fatalf("retry: %v", st)
			}
			got := lease(t, c, "w2")
			if hostWide && got.Task.ID != 0 {
				t.Errorf("leased %s while its host is held for a second", got.Task.URL)
			}
			if !hostWide && got.Task.URL != "http://h/b" {
				t.Errorf("leased %q, want h/b at once", got.Task.URL)
			}
			if hostWide {
				if got.Wait <= 0 {
					t.Errorf("no wait in %+v", got)
				}
				clock.advance(time.Second)
				if got := lease(t, c, "w2"); got.Task.ID == 0 {
					t.Errorf("after the retry delay: %+v, want a URL of h", got)
				}
			}
		})
	}
}
