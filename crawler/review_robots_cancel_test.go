package crawler

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// robotsOnce is a fetcher whose first robots.txt request blocks until its
// caller gives up; later ones answer 404 (no robots.txt: everything allowed).
type robotsOnce struct {
	robotsCalls atomic.Int32
	entered     chan struct{}
}

func (f *robotsOnce) Fetch(ctx context.Context, url string) ([]string, error) {
	return nil, ctx.Err()
}

func (f *robotsOnce) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	if f.robotsCalls.Add(1) == 1 {
		close(f.entered)
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	return 404, nil, nil
}

// TestReviewRobotsLoadCancelledByOtherCaller pins a bug: when the caller
// loading a host's robots.txt gave up (its context ended, e.g. a distributed
// worker that was stopped), every other caller already waiting for that
// load got the loader's "context canceled" as its own Fetch error, although
// its context was fine. A distributed worker then reported the page as
// failed for good.
//
// It runs in a synctest bubble, so that the waiter is known to be waiting
// for the loader (not merely given 50ms to get there) when the loader gives
// up.
func TestReviewRobotsLoadCancelledByOtherCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &robotsOnce{entered: make(chan struct{})}
		p, err := Polite(f, fastRetries())
		if err != nil {
			t.Fatal(err)
		}
		loaderCtx, cancelLoader := context.WithCancel(context.Background())
		defer cancelLoader()
		loaderDone := make(chan error, 1)
		go func() {
			_, err := p.Fetch(loaderCtx, "http://h.example/a")
			loaderDone <- err
		}()
		<-f.entered // the loader is fetching robots.txt

		waiterDone := make(chan error, 1)
		go func() {
			_, err := p.Fetch(context.Background(), "http://h.example/b")
			waiterDone <- err
		}()
		synctest.Wait() // the waiter waits for the loader
		if n := f.robotsCalls.Load(); n != 1 {
			t.Fatalf("robots.txt requested %d times while the first load was under way, want 1", n)
		}
		cancelLoader()
		if err := <-loaderDone; err == nil {
			t.Error("the cancelled loader's Fetch succeeded")
		}
		if err := <-waiterDone; err != nil {
			t.Errorf("Fetch with a live context failed because another caller's robots.txt load was cancelled: %v", err)
		}
		if n := f.robotsCalls.Load(); n != 2 {
			t.Errorf("robots.txt requested %d times, want 2 (the waiter loads it again)", n)
		}
	})
}
