package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/semrpc/semrpc/crawler"
)

const siteUsage = `Usage: crawl site [-listen ADDR] [-pages N] [-seed S] [-latency D] [-crawl-delay D]

Serves the built-in test site (the one the demo crawls: robots.txt rules, pages
that fail once, pages nothing links to) until interrupted, so that a
coordinator and workers can be tried on loopback:

	crawl site -listen 127.0.0.1:8081 &
	crawl coordinator -listen 127.0.0.1:7077 -url http://127.0.0.1:8081/ -data /tmp/crawl &
	crawl worker -coordinator 127.0.0.1:7077

Flags:
`

func runSite(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("crawl site", flag.ContinueOnError)
	var errBuf strings.Builder
	fs.SetOutput(&errBuf)
	listen := fs.String("listen", "127.0.0.1:8081", "serve on TCP `ADDR`")
	pages := fs.Int("pages", 3000, "`N` pages in the site")
	seed := fs.Int64("seed", 1, "seed `S` of the site's links")
	latency := fs.Duration("latency", 0, "delay every page by `D`")
	crawlDelay := fs.Duration("crawl-delay", 0, "announce a Crawl-delay of `D` in robots.txt")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, siteUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return &usageError{msg: err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return usagef("site: unexpected argument %q (flags only)", fs.Arg(0))
	case *pages < 1:
		return usagef("site: -pages %d: want at least 1", *pages)
	case *latency < 0 || *crawlDelay < 0:
		return usagef("site: durations must not be negative")
	}
	site := crawler.NewSite(*pages, *seed)
	site.Latency, site.CrawlDelay = *latency, *crawlDelay
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("site: %w", err)
	}
	srv := &http.Server{Handler: site, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(logOut, "site: %d pages at http://%s/ (a crawl from / fetches %d URLs: pages, a text file, redirects)\n", *pages, l.Addr(), len(site.Reachable()))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	<-done
	fmt.Fprintf(stdout, "site: served %d requests\n", site.TotalHits())
	return nil
}
