package labnet_test

import (
	"context"
	"fmt"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/crawler/labnet"
)

// Workers lease under at-least-once and report under at-most-once, so a
// network that loses and duplicates a third of the calls still has every
// URL reported exactly once.
func ExampleNetwork() {
	web := crawler.StaticFetcher{
		"a": {"b", "c"},
		"b": {"c", "d"},
		"c": {"a"},
		"d": {},
	}
	res, err := crawler.DistributedCrawl(context.Background(), crawler.DistributedConfig{
		StartURL: "a",
		Fetcher:  web,
		Workers:  3,
		Network:  &labnet.Network{Loss: 0.3, Duplicate: 0.3, Seed: 7},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("fetched:", res.Fetched)
	fmt.Println("every URL reported once:", res.Check == nil)
	// Output:
	// fetched: [a b c d]
	// every URL reported once: true
}

// Validate refuses probabilities out of range.
func ExampleNetwork_Validate() {
	fmt.Println((&labnet.Network{Loss: 1}).Validate())
	// Output:
	// labnet: Loss 1: want 0 <= loss < 1
}
