package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/labrpc/labtest"
	"github.com/semrpc/semrpc/rpc"
)

// graph returns a random web of n pages, all reachable from "n/0".
func graph(n int, rng *rand.Rand) crawler.StaticFetcher {
	web := crawler.StaticFetcher{}
	for i := 0; i < n; i++ {
		links := []string{fmt.Sprintf("n/%d", (i+1)%n)}
		for j := 0; j < 3; j++ {
			links = append(links, fmt.Sprintf("n/%d", rng.Intn(n)))
		}
		web[fmt.Sprintf("n/%d", i)] = links
	}
	return web
}

// Issue 6, suite 5: a distributed crawl over a lossy, duplicating lab
// network whose workers die mid-lease: every page is reported exactly once.
// It runs in virtual time: the leases, polls and backoffs take none.
func TestCrawlerUnderFaults(t *testing.T) { labtest.Virtual(t, crawlerUnderFaults) }

func crawlerUnderFaults(t *testing.T) {
	sd := seed(t)
	rng := rand.New(rand.NewSource(sd))
	pages := 400 * soak()
	web := graph(pages, rng)

	coord, err := crawler.NewCoordinator(crawler.CoordinatorConfig{
		StartURL: "n/0", LeaseTimeout: 150 * time.Millisecond, PollInterval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	core := rpc.NewServer(rpc.WithLogger(quiet()))
	if err := core.Register(coord); err != nil {
		t.Fatal(err)
	}
	net := labrpc.MakeNetworkSeed(sd)
	defer net.Cleanup()
	net.AddServer("coordinator", labrpc.MakeServerWith(core))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var fetches sync.Map // url -> *atomic.Int64
	var deaths atomic.Int64
	const workers = 6
	var wg sync.WaitGroup
	var mu sync.Mutex // protects wrng
	wrng := rand.New(rand.NewSource(sd + 1))
	var incarnation atomic.Int64

	// Each worker slot runs incarnations until the crawl is over; an
	// incarnation dies (its context ends mid-fetch, so it never reports)
	// with probability 1/20 per page.
	for w := 0; w < workers; w++ {
		name := fmt.Sprintf("worker-%d", w)
		end := net.MakeEnd(name)
		net.Connect(name, "coordinator")
		net.Enable(name, true)
		if err := net.SetLink(name, labrpc.LinkConfig{DropRequest: 0.1, DropReply: 0.1, Duplicate: 0.1, MaxDelay: 2 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		client := rpc.NewClient(end, rpc.WithRetryBudget(nil))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.Close()
			for ctx.Err() == nil {
				life, die := context.WithCancel(ctx)
				f := crawler.FetcherFunc(func(fctx context.Context, url string) ([]string, error) {
					v, _ := fetches.LoadOrStore(url, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
					mu.Lock()
					dies := wrng.Intn(20) == 0
					mu.Unlock()
					if dies {
						deaths.Add(1)
						die()
						return nil, fctx.Err()
					}
					return web.Fetch(fctx, url)
				})
				_, err := crawler.RunWorker(life, client, f, fmt.Sprintf("%s.%d", name, incarnation.Add(1)))
				die()
				if err == nil {
					return // the crawl is over
				}
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("crawl did not finish: %v", ctx.Err())
	}

	if err := coord.Check(); err != nil {
		t.Fatal(err)
	}
	fetched, failed := coord.Result()
	if len(failed) != 0 {
		t.Errorf("%d pages failed: %v", len(failed), failed)
	}
	sort.Strings(fetched)
	if len(fetched) != pages {
		t.Fatalf("%d pages reported, want %d", len(fetched), pages)
	}
	for i := 1; i < len(fetched); i++ {
		if fetched[i] == fetched[i-1] {
			t.Fatalf("page %s reported twice", fetched[i])
		}
	}
	st := coord.Stats()
	t.Logf("%d pages, %d worker deaths, %d leases reassigned, %d duplicate reports ignored, table answered %d duplicates",
		len(fetched), deaths.Load(), st.Reassigned, st.Duplicates, core.Stats().Table.Duplicates)
	if deaths.Load() == 0 || st.Reassigned == 0 {
		t.Error("no worker died mid-lease: the test exercised nothing")
	}
	never := 0
	for url := range web {
		if _, ok := fetches.Load(url); !ok {
			never++
		}
	}
	if never != 0 {
		t.Errorf("%d pages were never fetched", never)
	}
}
