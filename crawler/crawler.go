package crawler

import (
	"context"
)

// Crawler is a polite web crawler: an HTTPFetcher wrapped by Polite, walked
// by a Strategy. Create it with New and release it with Close.
type Crawler struct {
	cfg    Config
	http   *HTTPFetcher
	polite *PoliteFetcher
}

// New returns a Crawler configured by cfg (nil means DefaultConfig()).
func New(cfg *Config) (*Crawler, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hc := HTTPConfig{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	if hc.UserAgent == "" {
		hc.UserAgent = c.UserAgent
	}
	hf, err := NewHTTPFetcher(&hc)
	if err != nil {
		return nil, err
	}
	pf, err := Polite(hf, &c)
	if err != nil {
		hf.Close()
		return nil, err
	}
	return &Crawler{cfg: c, http: hf, polite: pf}, nil
}

// Fetcher returns the crawler's polite fetcher, for use with another
// strategy or by a distributed worker.
func (c *Crawler) Fetcher() *PoliteFetcher { return c.polite }

// Crawl fetches, politely, every page reachable from startURL on its host
// and Config.AllowedHosts within the configured limits, each at most once,
// and never a page robots.txt disallows. The error is non-nil if startURL is not an http(s) URL or if ctx
// ended the crawl early (the Result then holds what was crawled).
func (c *Crawler) Crawl(ctx context.Context, startURL string) (Result, error) {
	start, err := Normalize(startURL)
	if err != nil {
		return Result{}, err
	}
	if err := c.polite.AllowHosts(start); err != nil {
		return Result{}, err
	}
	strategy := c.cfg.Strategy
	if strategy == nil {
		strategy = ConcurrentChannel
	}
	return strategy(ctx, start, c.polite,
		WithMaxPages(c.cfg.MaxPages), WithMaxDepth(c.cfg.MaxDepth), WithParallelism(c.cfg.Parallelism))
}

// Close releases the crawler's idle connections. Call it once no Crawl is
// running.
func (c *Crawler) Close() error { return c.http.Close() }
