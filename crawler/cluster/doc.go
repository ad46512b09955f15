// Package cluster runs a distributed crawl across processes: one
// coordinator process and any number of worker processes, talking semrpc
// over TCP. It holds their lifecycles, so that a program (examples/crawl's
// "crawl coordinator" and "crawl worker") only parses flags and prints.
//
// RunCoordinator serves a crawler.Coordinator on a TCP listener until the
// crawl is over, then keeps telling workers so for a while (Linger) and
// returns a Report: pages, failures, skipped URLs by reason, worker
// processes, restarts, and whether every URL was reported exactly once.
// With a DataDir the crawl lives in a bbolt file (crawler.CrawlStore): a
// coordinator killed at any moment and run again on the same directory
// resumes it.
//
// RunWorkers runs one worker process: Fetchers workers (crawler.RunWorkerWith)
// sharing one connection to the coordinator and one polite fetcher, and a
// heartbeat, so that the coordinator frees the process's leases within
// crawler.DefaultProcessTimeout of its death (SIGKILL, a cut cable) instead
// of after the lease time. Interrupted (ctx ends), it gives its leases back
// before it returns.
//
// Every goroutine either function starts is stopped before it returns.
package cluster
