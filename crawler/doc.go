// Package crawler is the web crawler semrpc uses as its example service: the
// three crawlers of the classic distributed-systems lecture, a real HTTP
// fetcher, a polite wrapper that makes any of them safe to point at a real
// site, and the pure scheduling state of the distributed crawl.
//
// # Strategies
//
// A Fetcher turns a URL into the URLs it links to. A Strategy walks the link
// graph from a start URL and fetches every reachable URL exactly once,
// returning a Result (what was fetched, what failed):
//
//   - Serial is a depth-first recursion with a seen map, in one goroutine.
//   - ConcurrentMutex starts a goroutine per URL; the goroutines share a seen
//     set behind a mutex (test-and-set decides who fetches a URL) and a
//     sync.WaitGroup tells when the last one is done.
//   - ConcurrentChannel shares nothing: a coordinator owns the seen set and
//     the queue, workers send the links they found on a channel, and the
//     coordinator stops when no worker is outstanding and the queue is empty.
//
// All three accept WithMaxPages, WithMaxDepth and WithParallelism, stop
// promptly when their context is cancelled, and wait for every Fetch they
// started before returning, so no goroutine outlives the call.
//
// A Fetcher that is also a PageFetcher (HTTPFetcher, PoliteFetcher) tells
// the strategies and the distributed workers which pages ask not to be
// indexed (<meta name="robots" content="noindex">, X-Robots-Tag: noindex):
// such a page is fetched and its links followed, but the crawl lists it in
// Result.NoIndex (Coordinator.NoIndex, DistributedResult.NoIndex) instead
// of among the fetched pages. A plain Fetcher's pages are all indexed.
//
// # Fetching real pages
//
// HTTPFetcher fetches over net/http with a timeout and a body size limit,
// parses <a href> links out of text/html bodies (ExtractLinks) and returns
// them normalised (Normalize). A 5xx, a 429 or a network error is retryable,
// any other 4xx is final: see HTTPError and Retryable.
//
// Polite wraps a Fetcher (usually an HTTPFetcher) so that whatever strategy
// drives it fetches politely: robots.txt is fetched once per origin (again
// after RobotsTTL) and obeyed, including its Crawl-delay; requests to one
// host are limited in number (8 in flight by default) and, if configured, in
// rate, and a Retry-After holds back the whole host; links to hosts other
// than the start host and Config.AllowedHosts are dropped; and transient
// failures are retried with exponential backoff. Because politeness is a Fetcher, Serial, ConcurrentMutex,
// ConcurrentChannel and the distributed crawl all get it for free. Crawler
// puts an HTTPFetcher, Polite and a Strategy together, configured by Config.
//
// # Distributed crawl
//
// Scheduler is the coordinator's state for a crawl spread over worker
// processes: the frontier, the seen set and time-limited leases. It has no
// goroutines, network or clock (callers pass the time in), so it is tested
// step by step. A task whose worker dies is handed out again when its lease
// expires; of several reports for one URL only the first counts.
//
// Coordinator serves a Scheduler as an RPC service: Lease, Report, Release
// and Heartbeat, which a CoordinatorClient calls, each under the semantics
// it needs. RunWorker leases a task under at-least-once semantics (a
// retried Lease returns the lease the worker already holds), fetches it
// through its Fetcher (a PoliteFetcher, which obeys robots.txt) and reports
// the links under at-most-once semantics, so the rpc server's duplicate
// table answers a retried report without running it again.
//
// Workers that run in one process name it (LeaseArgs.Process) and the
// process sends heartbeats: once it has been silent for
// CoordinatorConfig.ProcessTimeout (1.5 s by default: it was killed, or cut
// off), the coordinator frees all its leases, so that its hosts' slots go to
// other workers at once rather than after LeaseTimeout. A report from a
// process that comes back late still counts at most once per URL.
//
// The coordinator counts the links a crawl did not follow, by reason
// (Skipped: robots.txt, nofollow, other hosts, the page and depth limits),
// and an unreachable host is reported as such (ErrHostUnreachable), not as
// a robots.txt refusal.
//
// DistributedCrawl puts a Coordinator and N workers together in one
// program, over loopback TCP or another Network (package crawler/labnet
// simulates a lossy one), and checks at the end that every URL was reported
// exactly once. Package crawler/cluster runs the coordinator and the
// worker processes of a crawl spread over machines.
//
// # Testing
//
// Site generates a web site with seeded random links, robots.txt rules,
// failing and unlinked pages, and counts the requests it gets, so a test can
// check that a crawl fetched every page once and nothing it should not.
package crawler
