package crawler_test

import (
	"context"
	"fmt"

	"github.com/semrpc/semrpc/crawler"
)

func ExampleDistributedCrawl() {
	web := crawler.StaticFetcher{
		"a": {"b", "c"},
		"b": {"a", "c", "d"},
		"c": {"a"},
		"d": {"e"}, // e does not exist
	}
	res, err := crawler.DistributedCrawl(context.Background(), crawler.DistributedConfig{
		StartURL:  "a",
		Fetcher:   web, // usually a PoliteFetcher
		Workers:   3,
		Network:   crawler.NetworkLabrpc,
		Loss:      0.2, // of requests, and of replies
		Duplicate: 0.2,
		Seed:      1,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("fetched:", res.Fetched)
	fmt.Println("failed:", len(res.Failed))
	fmt.Println("every URL reported once:", res.Check == nil)
	// Output:
	// fetched: [a b c d]
	// failed: 1
	// every URL reported once: true
}
