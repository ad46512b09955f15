package crawler

import "context"

// ConcurrentChannel crawls with a coordinator and workers that share no
// memory. The coordinator (the calling goroutine) owns the seen set and the
// queue of URLs to fetch; it starts a worker goroutine per URL, and each
// worker sends the links it found back on a channel. The coordinator counts
// outstanding workers and stops when none is left and the queue is empty.
// WithParallelism bounds the number of outstanding workers.
func ConcurrentChannel(ctx context.Context, url string, f Fetcher, opts ...Option) (Result, error) {
	o := buildOptions(opts)
	res := newResult()
	reports := make(chan fetchReport)
	seen := make(map[string]bool)
	var queue []crawlTask
	enqueue := func(url string, depth int) {
		if !seen[url] && o.admit(len(seen)) {
			seen[url] = true
			queue = append(queue, crawlTask{url: url, depth: depth})
		}
	}
	enqueue(url, 0)

	outstanding := 0
	for {
		for len(queue) > 0 && (o.parallelism <= 0 || outstanding < o.parallelism) && ctx.Err() == nil {
			t := queue[0]
			queue[0] = crawlTask{}
			queue = queue[1:]
			outstanding++
			go func() {
				links, noIndex, err := fetchPage(ctx, f, t.url)
				// Unbuffered, but never blocks for long: the coordinator
				// receives until outstanding reaches zero, even after ctx ends.
				reports <- fetchReport{crawlTask: t, links: links, noIndex: noIndex, err: err}
			}()
		}
		if outstanding == 0 {
			break // queue empty, or ctx done and every worker has reported
		}
		r := <-reports
		outstanding--
		res.record(r.url, r.noIndex, r.err)
		if r.err != nil || !o.followLinks(r.depth) || ctx.Err() != nil {
			continue
		}
		for _, link := range r.links {
			enqueue(link, r.depth+1)
		}
	}
	res.finish()
	return res, ctx.Err()
}

type crawlTask struct {
	url   string
	depth int
}

type fetchReport struct {
	crawlTask
	links   []string
	noIndex bool
	err     error
}
