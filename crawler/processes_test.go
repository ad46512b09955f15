package crawler

import (
	"slices"
	"testing"
	"time"
)

func heartbeat(t *testing.T, c *Coordinator, process string, workers int) HeartbeatReply {
	t.Helper()
	var r HeartbeatReply
	if err := c.Heartbeat(HeartbeatArgs{Process: process, Workers: workers}, &r); err != nil {
		t.Fatalf("Heartbeat(%s): %v", process, err)
	}
	return r
}

// TestSilentProcessLosesItsLeasesAndALateReportCountsOnce drives the
// coordinator with a fake clock: a process that stops calling loses its
// lease after ProcessTimeout (not LeaseTimeout), the URL goes to a live
// process, a heartbeating process keeps its lease however slow its fetch,
// and the silent process's late report is accepted at most once for the
// URL: exactly once over both reports.
func TestSilentProcessLosesItsLeasesAndALateReportCountsOnce(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b"},
		LeaseTimeout: time.Hour, ProcessTimeout: 2 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var dead, alive LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "p1/0", Process: "p1"}, &dead); err != nil || dead.Task.ID == 0 {
		t.Fatalf("p1's lease: %+v, %v", dead, err)
	}
	if err := c.Lease(LeaseArgs{Worker: "p2/0", Process: "p2"}, &alive); err != nil || alive.Task.ID == 0 {
		t.Fatalf("p2's lease: %+v, %v", alive, err)
	}
	if hb := heartbeat(t, c, "p2", 1); hb.Interval <= 0 || hb.Interval > time.Second || hb.Lost {
		t.Errorf("heartbeat reply %+v: want an interval of at most a third of the timeout, not lost", hb)
	}

	// p2 beats, p1 is silent: one second short of the timeout nothing
	// changes; at the timeout p1's lease is freed, p2's kept.
	clock.advance(time.Second)
	heartbeat(t, c, "p2", 1)
	if st := c.Stats(); st.ProcessesLost != 0 || st.Leased != 2 {
		t.Fatalf("before the timeout: %d processes lost, %d leased; want 0 and 2", st.ProcessesLost, st.Leased)
	}
	clock.advance(time.Second)
	heartbeat(t, c, "p2", 1)
	if st := c.Stats(); st.ProcessesLost != 1 || st.LostLeases != 1 || st.Leased != 1 || st.Queued != 1 {
		t.Fatalf("at the timeout: %+v; want 1 process lost, 1 lease freed, 1 leased, 1 queued", st)
	}
	var next LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "p3/0", Process: "p3"}, &next); err != nil || next.Task.URL != dead.Task.URL {
		t.Fatalf("p3's lease: %+v, %v; want p1's freed URL %s", next.Task, err, dead.Task.URL)
	}

	// p1 comes back: it is told it was lost, and its late report counts
	// (the first for the URL); p3's report of the same URL is a duplicate.
	if hb := heartbeat(t, c, "p1", 1); !hb.Lost {
		t.Errorf("p1's heartbeat after the timeout: %+v, want Lost", hb)
	}
	if got := report(t, c, ReportArgs{TaskID: dead.Task.ID, URL: dead.Task.URL, Attempt: 1}); got != Accepted {
		t.Errorf("p1's late report: %v, want Accepted", got)
	}
	if got := report(t, c, ReportArgs{TaskID: next.Task.ID, URL: next.Task.URL, Attempt: 1}); got != Duplicate {
		t.Errorf("p3's report of the same URL: %v, want Duplicate", got)
	}
	if got := report(t, c, ReportArgs{TaskID: alive.Task.ID, URL: alive.Task.URL, Attempt: 1}); got != Accepted {
		t.Errorf("p2's report: %v, want Accepted", got)
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
	if procs, workers := c.Processes(); procs != 3 || workers != 3 {
		t.Errorf("Processes() = %d, %d; want 3 processes, 3 workers", procs, workers)
	}
	if st := c.Stats(); st.Reassigned != 0 {
		t.Errorf("%d leases expired; the hour-long lease should never have", st.Reassigned)
	}
}

// TestProcessWithoutNameIsNeverLost: workers that name no process (in one
// program, say) keep their leases until LeaseTimeout, however long the
// silence.
func TestProcessWithoutNameIsNeverLost(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b"},
		LeaseTimeout: time.Hour, ProcessTimeout: time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := lease(t, c, "w1")
	clock.advance(time.Minute)
	b := lease(t, c, "w2")
	if b.Task.URL == a.Task.URL || c.Stats().ProcessesLost != 0 {
		t.Errorf("w2 leased %s while w1 holds %s; %+v", b.Task.URL, a.Task.URL, c.Stats())
	}
}

// TestSkippedLinksAreCountedByReason: links dropped by the scheduler (other
// hosts, the page limit, the depth limit) and by the worker's fetcher
// (robots.txt, nofollow, as ReportArgs.Skipped) are counted once per
// accepted report, with distinct examples; a duplicate report adds nothing.
func TestSkippedLinksAreCountedByReason(t *testing.T) {
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/", Hosts: []string{"h"}, MaxPages: 3, MaxDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	root := lease(t, c, "w1")
	skipped := []SkippedLink{{"http://h/private", SkipRobots}, {"http://h/nf", SkipNoFollow},
		{"http://h/private", SkipRobots}, {"http://h/x", "made up"}}
	links := []string{"http://h/1", "http://other/", "http://h/2", "http://h/3"}
	if got := report(t, c, ReportArgs{TaskID: root.Task.ID, URL: root.Task.URL, Links: links, Skipped: skipped, Attempt: 1}); got != Accepted {
		t.Fatalf("report: %v", got)
	}
	// The same report again, as from a worker whose lease had expired.
	if got := report(t, c, ReportArgs{TaskID: root.Task.ID, URL: root.Task.URL, Links: links, Skipped: skipped, Attempt: 2}); got != Duplicate {
		t.Fatalf("second report: %v", got)
	}
	one := lease(t, c, "w1")
	if got := report(t, c, ReportArgs{TaskID: one.Task.ID, URL: one.Task.URL, Links: []string{"http://h/deep"}, Attempt: 1}); got != Accepted {
		t.Fatalf("report: %v", got)
	}
	want := []Skipped{
		{Reason: SkipRobots, Links: 2, Examples: []string{"http://h/private"}},
		{Reason: SkipNoFollow, Links: 1, Examples: []string{"http://h/nf"}},
		{Reason: SkipOtherHost, Links: 1, Examples: []string{"http://other/"}},
		{Reason: SkipPageLimit, Links: 1, Examples: []string{"http://h/3"}},
		{Reason: SkipDepth, Links: 1, Examples: []string{"http://h/deep"}},
	}
	got := c.Skipped()
	if !slices.EqualFunc(got, want, func(a, b Skipped) bool {
		return a.Reason == b.Reason && a.Links == b.Links && slices.Equal(a.Examples, b.Examples)
	}) {
		t.Errorf("Skipped() = %+v\nwant %+v", got, want)
	}
}

// TestRestartedCoordinatorCountsEveryProcess: a coordinator restarted on
// its store counted only the worker processes it met itself (2 where 3
// took part). The processes, and the skipped links, are now in the store.
func TestRestartedCoordinatorCountsEveryProcess(t *testing.T) {
	dir := t.TempDir()
	open := func() (*CrawlStore, *Coordinator) {
		t.Helper()
		st, err := OpenCrawlStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b", "http://h/c"}, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		return st, c
	}
	st, c := open()
	var lr LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "p1/0", Process: "p1"}, &lr); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, c, "p2", 4)
	if got := report(t, c, ReportArgs{TaskID: lr.Task.ID, URL: lr.Task.URL, Attempt: 1,
		Skipped: []SkippedLink{{"http://h/private", SkipRobots}}}); got != Accepted {
		t.Fatalf("report: %v", got)
	}
	st.Close()

	st, c = open()
	defer st.Close()
	if err := c.Lease(LeaseArgs{Worker: "p3/0", Process: "p3"}, &lr); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, c, "p2", 4) // the same process, after the restart
	if procs, workers := c.Processes(); procs != 3 || workers != 6 {
		t.Errorf("after a restart, Processes() = %d, %d; want 3 processes (p1, p2, p3), 6 workers", procs, workers)
	}
	if s := c.Skipped(); len(s) != 1 || s[0].Reason != SkipRobots || s[0].Links != 1 {
		t.Errorf("after a restart, Skipped() = %+v; want the robots.txt link", s)
	}
	if r := c.Stats().Restarts; r != 1 {
		t.Errorf("%d restarts, want 1", r)
	}
}

// TestProcessNamesAreBounded: a process name longer than MaxProcessName is
// refused by Lease and Heartbeat, not stored.
func TestProcessNamesAreBounded(t *testing.T) {
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/"})
	if err != nil {
		t.Fatal(err)
	}
	long := string(make([]byte, MaxProcessName+1))
	if err := c.Lease(LeaseArgs{Worker: "w", Process: long}, &LeaseReply{}); err == nil {
		t.Error("Lease with a long process name: no error")
	}
	if err := c.Heartbeat(HeartbeatArgs{Process: long}, &HeartbeatReply{}); err == nil {
		t.Error("Heartbeat with a long process name: no error")
	}
	if procs, _ := c.Processes(); procs != 0 {
		t.Errorf("%d processes recorded, want 0", procs)
	}
}

// TestRestartedCoordinatorFreesTheLeasesOfAProcessThatDiedMeanwhile: the
// leases read back from the store keep their process; a process that does
// not call the restarted coordinator within twice ProcessTimeout loses
// them (not after LeaseTimeout), one that heartbeats keeps them.
func TestRestartedCoordinatorFreesTheLeasesOfAProcessThatDiedMeanwhile(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	open := func() (*CrawlStore, *Coordinator) {
		t.Helper()
		st, err := OpenCrawlStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b"}, Store: st,
			LeaseTimeout: time.Hour, ProcessTimeout: time.Second, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return st, c
	}
	st, c := open()
	var a, b LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "p1/0", Process: "p1"}, &a); err != nil || a.Task.ID == 0 {
		t.Fatalf("p1's lease: %+v, %v", a, err)
	}
	if err := c.Lease(LeaseArgs{Worker: "p2/0", Process: "p2"}, &b); err != nil || b.Task.ID == 0 {
		t.Fatalf("p2's lease: %+v, %v", b, err)
	}
	st.Close() // the coordinator dies; p1 dies while it is down

	clock.advance(10 * time.Second)
	st, c = open()
	defer st.Close()
	for range 6 { // p2 comes back and beats for 1.5 s
		heartbeat(t, c, "p2", 1)
		clock.advance(250 * time.Millisecond)
	}
	if got := c.Stats(); got.Leased != 2 || got.LostLeases != 0 {
		t.Fatalf("within the grace: %+v; want both leases kept", got)
	}
	clock.advance(500 * time.Millisecond) // two ProcessTimeouts since the restart
	heartbeat(t, c, "p2", 1)
	if got := c.Stats(); got.Leased != 1 || got.LostLeases != 1 || got.ProcessesLost != 1 {
		t.Fatalf("after the grace: %+v; want p1's lease freed, p2's kept", got)
	}
	var next LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "p3/0", Process: "p3"}, &next); err != nil || next.Task.URL != a.Task.URL {
		t.Errorf("p3's lease: %+v, %v; want p1's URL %s", next.Task, err, a.Task.URL)
	}
}
