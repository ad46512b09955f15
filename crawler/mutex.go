package crawler

import (
	"context"
	"sync"
)

// ConcurrentMutex crawls with a goroutine per URL. The goroutines share a seen
// set guarded by a mutex: a URL is fetched by whichever goroutine first
// test-and-sets it, and a sync.WaitGroup tells the caller when the last
// goroutine is done. WithParallelism bounds how many of them fetch at once.
func ConcurrentMutex(ctx context.Context, url string, f Fetcher, opts ...Option) (Result, error) {
	c := &mutexCrawl{f: f, o: buildOptions(opts), seen: make(map[string]bool), res: newResult()}
	if c.o.parallelism > 0 {
		c.slots = make(chan struct{}, c.o.parallelism)
	}
	if c.claim(url) {
		c.wg.Add(1)
		go c.visit(ctx, url, 0)
	}
	c.wg.Wait()
	c.res.finish()
	return c.res, ctx.Err()
}

type mutexCrawl struct {
	f     Fetcher
	o     options
	slots chan struct{} // nil when parallelism is unlimited
	wg    sync.WaitGroup

	mu   sync.Mutex // protects following
	seen map[string]bool
	res  Result
}

// claim is the test-and-set: it reports whether the caller now owns url.
func (c *mutexCrawl) claim(url string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[url] || !c.o.admit(len(c.seen)) {
		return false
	}
	c.seen[url] = true
	return true
}

func (c *mutexCrawl) visit(ctx context.Context, url string, depth int) {
	defer c.wg.Done()
	if !c.acquire(ctx) {
		return
	}
	links, noIndex, err := fetchPage(ctx, c.f, url)
	c.release()
	c.mu.Lock()
	c.res.record(url, noIndex, err)
	c.mu.Unlock()
	if err != nil || !c.o.followLinks(depth) || ctx.Err() != nil {
		return
	}
	for _, link := range links {
		if c.claim(link) {
			c.wg.Add(1)
			go c.visit(ctx, link, depth+1)
		}
	}
}

// acquire takes a fetch slot; it fails once ctx is done.
func (c *mutexCrawl) acquire(ctx context.Context) bool {
	if c.slots == nil {
		return ctx.Err() == nil
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if ctx.Err() != nil {
		<-c.slots
		return false
	}
	return true
}

func (c *mutexCrawl) release() {
	if c.slots != nil {
		<-c.slots
	}
}
