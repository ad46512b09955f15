package crawler

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// goFetcher is a fake web for the classic exercise: golang.org's front page
// and a few package pages, with one link (cmd/) to a page it does not have.
var goFetcher = StaticFetcher{
	"https://golang.org/": {
		"https://golang.org/pkg/",
		"https://golang.org/cmd/",
	},
	"https://golang.org/pkg/": {
		"https://golang.org/",
		"https://golang.org/cmd/",
		"https://golang.org/pkg/fmt/",
		"https://golang.org/pkg/os/",
	},
	"https://golang.org/pkg/fmt/": {
		"https://golang.org/",
		"https://golang.org/pkg/",
	},
	"https://golang.org/pkg/os/": {
		"https://golang.org/",
		"https://golang.org/pkg/",
		"https://golang.org/pkg/os/exec/",
	},
	"https://golang.org/pkg/os/exec/": {
		"https://golang.org/pkg/os/",
	},
}

var strategies = []struct {
	name string
	run  Strategy
}{
	{"serial", Serial},
	{"mutex", ConcurrentMutex},
	{"channel", ConcurrentChannel},
}

// countingFetcher counts Fetch calls per URL and the most calls in flight at
// once, and can slow or block fetches.
type countingFetcher struct {
	inner Fetcher
	delay func(url string) time.Duration // nil: no delay

	mu          sync.Mutex // protects following
	calls       map[string]int
	inFlight    int
	maxInFlight int
}

func newCounting(inner Fetcher) *countingFetcher {
	return &countingFetcher{inner: inner, calls: make(map[string]int)}
}

func (c *countingFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	c.mu.Lock()
	c.calls[url]++
	c.inFlight++
	c.maxInFlight = max(c.maxInFlight, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	if c.delay != nil {
		if d := c.delay(url); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return c.inner.Fetch(ctx, url)
}

func (c *countingFetcher) snapshot() (calls map[string]int, inFlight, maxInFlight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps_clone(c.calls), c.inFlight, c.maxInFlight
}

func maps_clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestStrategiesFakeWeb(t *testing.T) {
	wantFetched := []string{
		"https://golang.org/",
		"https://golang.org/pkg/",
		"https://golang.org/pkg/fmt/",
		"https://golang.org/pkg/os/",
		"https://golang.org/pkg/os/exec/",
	}
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			f := newCounting(goFetcher)
			res, err := st.run(context.Background(), "https://golang.org/", f)
			if err != nil {
				t.Fatalf("crawl: %v", err)
			}
			if !slices.Equal(res.Fetched, wantFetched) {
				t.Errorf("Fetched = %q, want %q", res.Fetched, wantFetched)
			}
			if len(res.Errors) != 1 || !errors.Is(res.Errors["https://golang.org/cmd/"], ErrNotFound) {
				t.Errorf("Errors = %v, want only cmd/ not found", res.Errors)
			}
			if res.Fetches != 6 {
				t.Errorf("Fetches = %d, want 6", res.Fetches)
			}
			calls, _, _ := f.snapshot()
			for url, n := range calls {
				if n != 1 {
					t.Errorf("%s fetched %d times", url, n)
				}
			}
			if len(calls) != 6 {
				t.Errorf("%d distinct URLs fetched, want 6", len(calls))
			}
		})
	}
}

func TestStrategiesMaxDepth(t *testing.T) {
	tests := []struct {
		depth int
		want  []string
	}{
		{1, []string{"https://golang.org/", "https://golang.org/cmd/", "https://golang.org/pkg/"}},
		{2, []string{"https://golang.org/", "https://golang.org/cmd/", "https://golang.org/pkg/",
			"https://golang.org/pkg/fmt/", "https://golang.org/pkg/os/"}},
	}
	for _, st := range strategies {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/depth%d", st.name, tt.depth), func(t *testing.T) {
				res, err := st.run(context.Background(), "https://golang.org/", goFetcher, WithMaxDepth(tt.depth))
				if err != nil {
					t.Fatal(err)
				}
				got := append(slices.Clone(res.Fetched), mapKeys(res.Errors)...)
				sort.Strings(got)
				if !slices.Equal(got, tt.want) {
					t.Errorf("fetched %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// randomGraph returns a seeded random web of n pages "p/<i>" linking to
// each other (and to a few pages that do not exist), and the set of URLs
// reachable from p/0. The last n/20 pages are never linked to.
func randomGraph(n int, seed int64) (web StaticFetcher, reachable map[string]bool) {
	rng := rand.New(rand.NewSource(seed))
	name := func(i int) string { return fmt.Sprintf("p/%d", i) }
	web = make(StaticFetcher, n)
	linkable := n - n/20 // the last 5% are never linked to
	for i := range n {
		var links []string
		for range 1 + rng.Intn(4) {
			links = append(links, name(rng.Intn(linkable)))
		}
		if rng.Intn(50) == 0 {
			links = append(links, fmt.Sprintf("missing/%d", i))
		}
		web[name(i)] = links
	}
	reachable = map[string]bool{name(0): true}
	queue := []string{name(0)}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, l := range web[u] {
			if !reachable[l] {
				reachable[l] = true
				queue = append(queue, l)
			}
		}
	}
	return web, reachable
}

func TestStrategiesRandomGraphs(t *testing.T) {
	seeds := []int64{1, 2, 3, time.Now().UnixNano()}
	for _, seed := range seeds {
		web, reachable := randomGraph(5000, seed)
		for _, st := range strategies {
			for _, par := range []int{0, 7} {
				t.Run(fmt.Sprintf("seed%d/%s/par%d", seed, st.name, par), func(t *testing.T) {
					t.Logf("seed %d, %d of 5000 pages reachable", seed, len(reachable))
					f := newCounting(web)
					res, err := st.run(context.Background(), "p/0", f, WithParallelism(par))
					if err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
					calls, _, maxInFlight := f.snapshot()
					for url, n := range calls {
						if !reachable[url] {
							t.Errorf("seed %d: unreachable %s fetched", seed, url)
						} else if n != 1 {
							t.Errorf("seed %d: %s fetched %d times", seed, url, n)
						}
					}
					if len(calls) != len(reachable) {
						t.Errorf("seed %d: fetched %d URLs, %d reachable", seed, len(calls), len(reachable))
					}
					if res.Fetches != len(reachable) || len(res.Fetched)+len(res.Errors) != len(reachable) {
						t.Errorf("seed %d: result has %d fetches, %d ok, %d errors; want %d", seed,
							res.Fetches, len(res.Fetched), len(res.Errors), len(reachable))
					}
					for url := range res.Errors {
						if _, exists := web[url]; exists {
							t.Errorf("seed %d: existing page %s reported as error", seed, url)
						}
					}
					if par > 0 && maxInFlight > par {
						t.Errorf("seed %d: %d fetches in flight, limit %d", seed, maxInFlight, par)
					}
				})
			}
		}
	}
}

func TestStrategiesMaxPages(t *testing.T) {
	const seed = 11
	web, reachable := randomGraph(2000, seed)
	for _, st := range strategies {
		for _, limit := range []int{1, 10, 333} {
			t.Run(fmt.Sprintf("%s/max%d", st.name, limit), func(t *testing.T) {
				if limit > len(reachable) {
					t.Fatalf("seed %d: only %d reachable", seed, len(reachable))
				}
				f := newCounting(web)
				res, err := st.run(context.Background(), "p/0", f, WithMaxPages(limit), WithParallelism(4))
				if err != nil {
					t.Fatal(err)
				}
				calls, _, _ := f.snapshot()
				if res.Fetches != limit || len(calls) != limit {
					t.Errorf("Fetches = %d, distinct calls = %d, want %d", res.Fetches, len(calls), limit)
				}
				for url, n := range calls {
					if n != 1 || !reachable[url] {
						t.Errorf("%s fetched %d times (reachable %v)", url, n, reachable[url])
					}
				}
			})
		}
	}
}

// TestStrategiesParallelismBound checks the limit on a wide, slow web, where
// an unlimited crawl would have hundreds of fetches in flight.
func TestStrategiesParallelismBound(t *testing.T) {
	web := StaticFetcher{"root": nil}
	for i := range 300 {
		web["root"] = append(web["root"], fmt.Sprintf("leaf/%d", i))
		web[fmt.Sprintf("leaf/%d", i)] = nil
	}
	for _, st := range strategies[1:] {
		for _, par := range []int{1, 5} {
			t.Run(fmt.Sprintf("%s/par%d", st.name, par), func(t *testing.T) {
				f := newCounting(web)
				f.delay = func(string) time.Duration { return 200 * time.Microsecond }
				if _, err := st.run(context.Background(), "root", f, WithParallelism(par)); err != nil {
					t.Fatal(err)
				}
				if _, _, m := f.snapshot(); m > par {
					t.Errorf("%d fetches in flight, limit %d", m, par)
				}
			})
		}
		t.Run(st.name+"/unlimited", func(t *testing.T) {
			// The control: without a limit, the same web does overlap fetches.
			f := newCounting(web)
			f.delay = func(string) time.Duration { return 20 * time.Millisecond }
			if _, err := st.run(context.Background(), "root", f); err != nil {
				t.Fatal(err)
			}
			if _, _, m := f.snapshot(); m < 2 {
				t.Errorf("only %d fetch in flight without a limit", m)
			}
		})
	}
}

// TestStrategiesCancel cancels a crawl whose fetches block until cancelled:
// every strategy must return promptly with the context's error, with no Fetch
// still running (goleak in TestMain checks for stray goroutines).
func TestStrategiesCancel(t *testing.T) {
	web, _ := randomGraph(3000, 5)
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := newCounting(web)
			blocked := make(chan struct{})
			var mu sync.Mutex
			started := 0
			f.delay = func(string) time.Duration {
				mu.Lock()
				defer mu.Unlock()
				started++
				if started < 20 {
					return 0
				}
				if started == 20 {
					close(blocked)
				}
				return time.Hour // blocks until ctx is cancelled
			}
			done := make(chan struct{})
			var res Result
			var err error
			go func() {
				defer close(done)
				res, err = st.run(ctx, "p/0", f, WithParallelism(64))
			}()
			<-blocked
			time.Sleep(10 * time.Millisecond) // let more fetches start and block
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("crawl did not stop after cancel")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			calls, inFlight, _ := f.snapshot()
			if inFlight != 0 {
				t.Errorf("%d fetches still running after return", inFlight)
			}
			total := 0
			for _, n := range calls {
				total += n
			}
			if res.Fetches != total {
				t.Errorf("Result.Fetches = %d, fetcher saw %d calls", res.Fetches, total)
			}
			if total > 20+64 {
				t.Errorf("%d fetches started; cancellation should stop new ones", total)
			}
		})
	}
}

func TestStrategyByName(t *testing.T) {
	for _, name := range []string{"serial", "mutex", "channel"} {
		if s, err := StrategyByName(name); err != nil || s == nil {
			t.Errorf("StrategyByName(%q) = %v, %v", name, s, err)
		}
	}
	if _, err := StrategyByName("distributed"); err == nil {
		t.Error("StrategyByName(distributed) succeeded")
	}
}
