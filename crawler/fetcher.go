package crawler

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Fetcher fetches one page and returns the URLs it links to.
//
// Implementations must be safe for concurrent use and must return promptly
// once ctx is done: the concurrent strategies wait for every Fetch they
// started before they return.
//
// A Fetcher that also implements PageFetcher (HTTPFetcher and PoliteFetcher
// do) is called through FetchPage instead of Fetch by the strategies and
// the distributed workers, so that a page that asks not to be indexed
// (Page.NoIndex: <meta name="robots" content="noindex"> or an X-Robots-Tag
// header) is known: its links are still followed, but it is listed in
// Result.NoIndex instead of Result.Fetched.
type Fetcher interface {
	Fetch(ctx context.Context, url string) (links []string, err error)
}

// fetchPage fetches url with f: through FetchPage if f is a PageFetcher,
// so that noIndex tells whether the page asked not to be indexed; through
// Fetch (noIndex false) otherwise.
func fetchPage(ctx context.Context, f Fetcher, url string) (links []string, noIndex bool, err error) {
	page, err := fetchWhole(ctx, f, url)
	if err != nil {
		return nil, false, err
	}
	return page.Links, page.NoIndex, nil
}

// fetchWhole fetches url with f: through FetchPage if f is a PageFetcher;
// through Fetch otherwise, as a Page with only URL and Links set.
func fetchWhole(ctx context.Context, f Fetcher, url string) (*Page, error) {
	pf, ok := f.(PageFetcher)
	if !ok {
		links, err := f.Fetch(ctx, url)
		if err != nil {
			return nil, err
		}
		return &Page{URL: url, Links: links}, nil
	}
	page, err := pf.FetchPage(ctx, url)
	if err != nil {
		return nil, err
	}
	if page == nil {
		return nil, fmt.Errorf("crawler: FetchPage %s returned no page and no error", url)
	}
	return page, nil
}

// FetcherFunc adapts an ordinary function to the Fetcher interface.
type FetcherFunc func(ctx context.Context, url string) ([]string, error)

// Fetch calls f(ctx, url).
func (f FetcherFunc) Fetch(ctx context.Context, url string) ([]string, error) { return f(ctx, url) }

// ErrNotFound is returned by StaticFetcher for a URL it has no page for.
var ErrNotFound = errors.New("crawler: not found")

// StaticFetcher is an in-memory Fetcher: a map from URL to the links of that
// page. A URL missing from the map fails with ErrNotFound. It is the fake
// fetcher used by the examples and tests; it never blocks.
type StaticFetcher map[string][]string

// Fetch returns a copy of the links recorded for url.
func (s StaticFetcher) Fetch(ctx context.Context, url string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, ok := s[url]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, url)
	}
	return append([]string(nil), links...), nil
}

// Result is what a crawl produced. All three strategies fill it the same way.
type Result struct {
	// Fetched lists, sorted, every URL whose Fetch succeeded and whose page
	// may be indexed: the crawl's index.
	Fetched []string
	// NoIndex lists, sorted, every URL fetched successfully whose page asked
	// not to be indexed (Page.NoIndex, known only from a PageFetcher): it
	// is not in Fetched, but its links were followed like any other's.
	NoIndex []string
	// Errors maps every URL whose Fetch failed to its error.
	Errors map[string]error
	// Fetches is the number of Fetch calls made:
	// len(Fetched)+len(NoIndex)+len(Errors).
	Fetches int
}

func newResult() Result { return Result{Errors: make(map[string]error)} }

func (r *Result) record(url string, noIndex bool, err error) {
	r.Fetches++
	switch {
	case err != nil:
		r.Errors[url] = err
	case noIndex:
		r.NoIndex = append(r.NoIndex, url)
	default:
		r.Fetched = append(r.Fetched, url)
	}
}

func (r *Result) finish() {
	sort.Strings(r.Fetched)
	sort.Strings(r.NoIndex)
}

// Strategy is the shape shared by Serial, ConcurrentMutex and
// ConcurrentChannel. A strategy fetches every URL reachable from url (within
// the limits set by opts) exactly once. The returned error is non-nil only if
// ctx ended the crawl early, in which case Result holds the partial crawl;
// failed fetches are reported in Result.Errors, not as the error.
//
// Strategies compare URLs as plain strings. HTTPFetcher and PoliteFetcher
// return normalised links, so pass them a normalised start URL (see
// Normalize; Crawler.Crawl does this): "http://h" and "http://h/" are
// different strings and would both be fetched.
type Strategy func(ctx context.Context, url string, f Fetcher, opts ...Option) (Result, error)

var (
	_ Strategy = Serial
	_ Strategy = ConcurrentMutex
	_ Strategy = ConcurrentChannel
)

// StrategyByName returns the strategy called "serial", "mutex" or "channel".
func StrategyByName(name string) (Strategy, error) {
	switch name {
	case "serial":
		return Serial, nil
	case "mutex":
		return ConcurrentMutex, nil
	case "channel":
		return ConcurrentChannel, nil
	}
	return nil, fmt.Errorf("crawler: unknown strategy %q (want serial, mutex or channel)", name)
}

// Option sets a crawl limit for a Strategy.
type Option func(*options)

type options struct {
	maxPages    int
	maxDepth    int
	parallelism int
}

// WithMaxPages limits the crawl to n fetches; n <= 0 means no limit.
func WithMaxPages(n int) Option { return func(o *options) { o.maxPages = n } }

// WithMaxDepth stops following links more than n hops from the start URL;
// n <= 0 means no limit. Depth is counted along the path by which a URL was
// first discovered, which for the concurrent strategies (and for Serial's
// depth-first order) need not be the shortest path: with a depth limit, a page
// first reached by a long path may be cut off although a shorter path exists.
func WithMaxDepth(n int) Option { return func(o *options) { o.maxDepth = n } }

// WithParallelism limits the concurrent strategies to n fetches in flight;
// n <= 0 means no limit (a goroutine per URL, as in the classic lecture
// crawlers). Serial ignores it.
func WithParallelism(n int) Option { return func(o *options) { o.parallelism = n } }

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// followLinks reports whether links found on a page at depth may be followed.
func (o options) followLinks(depth int) bool { return o.maxDepth <= 0 || depth < o.maxDepth }

// admit reports whether one more URL may be admitted when n already were.
func (o options) admit(n int) bool { return o.maxPages <= 0 || n < o.maxPages }
