package crawler

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// storeWithCrawl returns the bytes of a crawl store holding a crawl of a
// few hundred URLs, some of them done, and the directory it is in.
func storeWithCrawl(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/", LeaseTimeout: time.Minute, Store: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		r := lease(t, c, "w")
		if r.Task.ID == 0 {
			break
		}
		var links []string
		for j := range 10 {
			links = append(links, fmt.Sprintf("http://h/%d/%d-%s", i, j, "padding-padding-padding-padding"))
		}
		report(t, c, ReportArgs{TaskID: r.Task.ID, URL: r.Task.URL, Links: links, Attempt: 1})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, CrawlStoreFile))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// openDamaged writes data as a store and opens it, with a Coordinator on
// it: it must not crash the process, whatever the bytes.
func openDamaged(t *testing.T, data []byte) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CrawlStoreFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := OpenCrawlStore(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = NewCoordinator(CoordinatorConfig{Store: st})
	return err
}

// A truncated store file (a copy cut short, a full disk) made bbolt read
// past the end of its memory map: the coordinator died with SIGSEGV
// instead of saying what was wrong. It is now an error naming the damage;
// other damage is an error or a crawl, never a crash.
func TestOpenCrawlStoreDamagedFileIsAnErrorNotACrash(t *testing.T) {
	data := storeWithCrawl(t)
	if len(data) < 6*4096 {
		t.Fatalf("store of %d bytes: too small to cut", len(data))
	}
	if err := openDamaged(t, data); err != nil {
		t.Fatalf("the undamaged copy: %v", err)
	}
	for _, n := range []int{2 * 4096, 3 * 4096, len(data) / 2} {
		t.Run(fmt.Sprintf("truncated to %d of %d bytes", n, len(data)), func(t *testing.T) {
			if err := openDamaged(t, data[:n]); !errors.Is(err, ErrCrawlStoreCorrupt) {
				t.Errorf("err = %v, want ErrCrawlStoreCorrupt", err)
			}
		})
	}
	// bbolt grows its file ahead of its pages: a cut in the unused tail
	// loses nothing.
	t.Run("truncated in the unused tail", func(t *testing.T) {
		if err := openDamaged(t, data[:len(data)-1]); err != nil {
			t.Errorf("err = %v", err)
		}
	})
	rng := rand.New(rand.NewSource(7))
	for i := range 30 {
		damaged := append([]byte(nil), data...)
		off := 2*4096 + rng.Intn(len(data)-2*4096-64)
		rng.Read(damaged[off : off+64])
		t.Run(fmt.Sprintf("64 random bytes at %d", off), func(t *testing.T) {
			err := openDamaged(t, damaged)
			t.Logf("damage %d: %v", i, err)
		})
	}
}

// The crawl was declared over (Done closed, so workers were told and the
// coordinator printed its summary and exited) as soon as the last report's
// write had been taken by a commit, before that commit was in the store: a
// crash then lost the report of a crawl already announced finished. Done
// now waits for the write.
func TestCoordinatorIsNotDoneBeforeItsLastReportIsStored(t *testing.T) {
	st, err := OpenCrawlStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b"}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	a, b := lease(t, c, "w1"), lease(t, c, "w2")
	report(t, c, ReportArgs{TaskID: a.Task.ID, URL: a.Task.URL, Attempt: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	c.mu.Lock()
	c.saveHook = func() {
		c.mu.Lock()
		c.saveHook = nil
		c.mu.Unlock()
		close(entered)
		<-release
	}
	c.mu.Unlock()
	reported := make(chan error)
	go func() {
		var r ReportReply
		reported <- c.Report(ReportArgs{TaskID: b.Task.ID, URL: b.Task.URL, Attempt: 1}, &r)
	}()
	<-entered // b's write is being committed
	// Any other call checks whether the crawl is over meanwhile.
	if got := report(t, c, ReportArgs{TaskID: 9999, URL: "http://h/x", Attempt: 1}); got != UnknownTask {
		t.Fatalf("report of an unknown task: %v", got)
	}
	var lr LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "w3"}, &lr); err != nil || lr.Done {
		t.Errorf("Lease while the last report is being stored: %+v, %v; want not Done", lr, err)
	}
	select {
	case <-c.Done():
		t.Error("the crawl is over before its last report is in the store")
	default:
	}
	close(release)
	if err := <-reported; err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("the crawl is not over once its last report is stored")
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

// Release gives a worker's lease back at once, is stored before it
// answers (a coordinator resumed on the store has the URL queued), and a
// repeated Release changes nothing.
func TestCoordinatorReleaseRequeuesAtOnceAndIsStored(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCoordinator(CoordinatorConfig{StartURL: "http://h/", LeaseTimeout: time.Hour, Store: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	first := lease(t, c, "w1")
	for i, want := range []bool{true, false} {
		var rr ReleaseReply
		if err := c.Release(LeaseArgs{Worker: "w1"}, &rr); err != nil || rr.Released != want {
			t.Errorf("Release %d: %+v, %v; want Released %v", i+1, rr, err, want)
		}
	}
	st.Close() // killed
	st2, c2 := reopen(t, dir, clock)
	defer st2.Close()
	if got := c2.Stats(); got.Released != 1 || got.Queued != 1 || got.Leased != 0 {
		t.Errorf("resumed stats %+v; want 1 released, 1 queued, none leased", got)
	}
	if got := lease(t, c2, "w2"); got.Task.URL != "http://h/" || got.Task.ID == first.Task.ID {
		t.Errorf("w2 got %+v; want the start URL under a new task", got.Task)
	}
}

// A failed group commit: every call whose write was in it, or queued
// behind it, gets an error (none is answered as if stored, none waits
// forever), later calls are refused, and Done and Err say the coordinator
// stopped.
func TestFailedGroupCommitFailsEveryWaiterAndStopsTheCoordinator(t *testing.T) {
	st, err := OpenCrawlStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCoordinator(CoordinatorConfig{StartURLs: []string{"http://h/a", "http://h/b", "http://h/c"}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	c.mu.Lock()
	c.saveHook = func() {
		c.mu.Lock()
		c.saveHook = nil
		c.mu.Unlock()
		close(entered)
		<-release
	}
	c.mu.Unlock()
	errs := make(chan error, 3)
	call := func(w string) {
		var r LeaseReply
		errs <- c.Lease(LeaseArgs{Worker: w}, &r)
	}
	go call("w1")
	<-entered // w1's write is being committed
	go call("w2")
	go call("w3")
	for queued := uint64(0); queued < 3; { // w2 and w3 queued theirs behind it
		time.Sleep(time.Millisecond)
		c.mu.Lock()
		queued = c.queued
		c.mu.Unlock()
	}
	st.Close() // the disk goes away
	close(release)
	for range 3 {
		if err := <-errs; err == nil {
			t.Error("a Lease whose write was not stored answered without an error")
		}
	}
	var r LeaseReply
	if err := c.Lease(LeaseArgs{Worker: "w4"}, &r); err == nil || !strings.Contains(err.Error(), "coordinator stopped") {
		t.Errorf("Lease after the failed commit: %v, want coordinator stopped", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after the failed commit")
	}
	if c.Err() == nil {
		t.Error("Err is nil after the failed commit")
	}
}

// A coordinator whose store failed answers every call with an error, and
// its workers took that for a refusal and exited, so that restarting the
// coordinator on its store (which is what its error says to do) found no
// worker left. They now wait for it, as for a coordinator that is down,
// and send their reports again: the crawl completes on the restarted one,
// every URL reported once.
func TestWorkersWaitForACoordinatorRestartedAfterItsStoreFailed(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	web, reachable := randomGraph(60, 3)
	c1, err := NewCoordinator(CoordinatorConfig{StartURL: "p/0", LeaseTimeout: time.Minute, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	core1 := rpc.NewServer()
	if err := core1.Register(c1); err != nil {
		t.Fatal(err)
	}
	network := labrpc.MakeNetworkSeed(5)
	defer network.Cleanup()
	network.AddServer("coordinator", labrpc.MakeServerWith(core1))

	var once sync.Once
	fetches := 0
	var mu sync.Mutex
	f := FetcherFunc(func(ctx context.Context, u string) ([]string, error) {
		mu.Lock()
		fetches++
		n := fetches
		mu.Unlock()
		if n == 10 {
			once.Do(func() { st.Close() }) // the disk goes away
		}
		return web.Fetch(ctx, u)
	})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		name := fmt.Sprintf("w%d", i)
		end := network.MakeEnd(name)
		network.Connect(name, "coordinator")
		network.Enable(name, true)
		client := rpc.NewClient(end, rpc.WithSemantics(semantics.AtLeastOnce()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.Close()
			_, errs[i] = RunWorkerWith(context.Background(), client, f, WorkerConfig{Name: name, Patience: 30 * time.Second})
		}()
	}
	select {
	case <-c1.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the coordinator did not stop when its store failed")
	}
	if c1.Err() == nil {
		t.Fatalf("coordinator done without a store failure: the test shows nothing")
	}
	core1.Close()
	st2, err := OpenCrawlStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	c2, err := NewCoordinator(CoordinatorConfig{LeaseTimeout: time.Minute, Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	core2 := rpc.NewServer()
	defer core2.Close()
	if err := core2.Register(c2); err != nil {
		t.Fatal(err)
	}
	network.AddServer("coordinator", labrpc.MakeServerWith(core2))
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	if err := c2.Check(); err != nil {
		t.Error(err)
	}
	fetched, failed := c2.Result()
	if len(fetched)+len(failed) != len(reachable) {
		t.Errorf("%d URLs reported, want %d", len(fetched)+len(failed), len(reachable))
	}
}
