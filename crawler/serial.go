package crawler

import "context"

// Serial crawls depth-first in the calling goroutine: a recursive walk that
// skips URLs already in its seen map. It is the baseline the concurrent
// strategies are compared against.
func Serial(ctx context.Context, url string, f Fetcher, opts ...Option) (Result, error) {
	s := &serialCrawl{f: f, o: buildOptions(opts), seen: make(map[string]bool), res: newResult()}
	s.visit(ctx, url, 0)
	s.res.finish()
	return s.res, ctx.Err()
}

type serialCrawl struct {
	f    Fetcher
	o    options
	seen map[string]bool
	res  Result
}

func (s *serialCrawl) visit(ctx context.Context, url string, depth int) {
	if s.seen[url] || !s.o.admit(len(s.seen)) || ctx.Err() != nil {
		return
	}
	s.seen[url] = true
	links, noIndex, err := fetchPage(ctx, s.f, url)
	s.res.record(url, noIndex, err)
	if err != nil || !s.o.followLinks(depth) {
		return
	}
	for _, link := range links {
		s.visit(ctx, link, depth+1)
	}
}
