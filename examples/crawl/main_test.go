package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/semrpc/semrpc/crawler"
)

// runJSON runs the program with args and -json and decodes its summary.
func runJSON(t *testing.T, args ...string) summary {
	t.Helper()
	var out bytes.Buffer
	if err := run(append(args, "-json"), &out); err != nil {
		t.Fatalf("run %q: %v\n%s", args, err, out.String())
	}
	var s summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("run %q: bad JSON %v:\n%s", args, err, out.String())
	}
	return s
}

// checkFull asserts that s reports a complete crawl of site.
func checkFull(t *testing.T, s summary, site *crawler.Site) {
	t.Helper()
	if !s.CheckOK {
		t.Errorf("check failed: %s", s.Check)
	}
	if s.Pages != len(site.Reachable()) || s.Failed != len(site.Missing()) {
		t.Errorf("%d pages fetched, %d failed; want %d and %d", s.Pages, s.Failed, len(site.Reachable()), len(site.Missing()))
	}
	if s.Fetches < s.Pages+s.Failed || s.FetchRetries < int64(len(site.Flaky())) {
		t.Errorf("%d fetches, %d fetch retries; want at least %d and %d",
			s.Fetches, s.FetchRetries, s.Pages+s.Failed, len(site.Flaky()))
	}
	if s.ElapsedSeconds <= 0 || s.PagesPerSecond <= 0 {
		t.Errorf("elapsed %gs, %g pages/s", s.ElapsedSeconds, s.PagesPerSecond)
	}
}

func TestRunBuiltInSite(t *testing.T) {
	const pages, seed = 150, 4
	site := crawler.NewSite(pages, seed) // the same site the program builds
	tests := []struct {
		name string
		args []string
	}{
		{"serial", []string{"-mode", "serial"}},
		{"mutex", []string{"-mode", "mutex"}},
		{"channel", []string{"-mode", "channel"}},
		{"distributed-labrpc", []string{"-mode", "distributed", "-loss", "0.1", "-dup", "0.1"}},
		{"distributed-tcp", []string{"-net", "tcp", "-workers", "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runJSON(t, append(tt.args, "-pages", "150", "-seed", "4")...)
			checkFull(t, s, site)
			if s.SitePages != pages {
				t.Errorf("site_pages = %d", s.SitePages)
			}
			if strings.HasPrefix(tt.name, "distributed") && (s.Leases < s.Pages || s.RPCAttempts == 0) {
				t.Errorf("distributed crawl: %d leases, %d rpc attempts", s.Leases, s.RPCAttempts)
			}
			if tt.name == "distributed-labrpc" && (s.RPCRetries == 0 || s.Suppressed == 0) {
				t.Errorf("lossy network: %d rpc retries, %d duplicate reports suppressed; want some", s.RPCRetries, s.Suppressed)
			}
			// The site's 404 is on purpose, and the summary says so.
			for _, f := range s.Failures {
				if strings.HasSuffix(f.URL, "/missing.html") && f.Deliberate == "" {
					t.Errorf("the built-in site's 404 is not marked deliberate: %+v", f)
				}
			}
			// The distributed crawl lists the links it did not follow:
			// the site's /private/ pages (robots.txt) and its links to
			// "localhost" (another host).
			if strings.HasPrefix(tt.name, "distributed") {
				reasons := map[string]int{}
				for _, sk := range s.Skipped {
					reasons[sk.Reason] = sk.Links
					if len(sk.Examples) == 0 || len(sk.Examples) > crawler.MaxSkippedExamples {
						t.Errorf("skipped %s: %d examples", sk.Reason, len(sk.Examples))
					}
				}
				if reasons[crawler.SkipRobots] == 0 || reasons[crawler.SkipOtherHost] == 0 {
					t.Errorf("skipped links %+v: want some for robots.txt and for other hosts", s.Skipped)
				}
			}
		})
	}
}

func TestRunURL(t *testing.T) {
	for _, mode := range []string{"channel", "distributed"} {
		t.Run(mode, func(t *testing.T) {
			site := crawler.NewSite(80, 9)
			srv := httptest.NewServer(site)
			defer srv.Close()
			s := runJSON(t, "-url", srv.URL, "-mode", mode)
			checkFull(t, s, site)
			if s.SitePages != 0 {
				t.Errorf("site_pages = %d for -url", s.SitePages)
			}
			for _, p := range site.Reachable() {
				if n := site.Served(p); n != 1 {
					t.Errorf("%s served %d times", p, n)
				}
			}
			for _, p := range append(site.Disallowed(), site.Unlinked()...) {
				if n := site.Hits(p); n != 0 {
					t.Errorf("%s requested %d times", p, n)
				}
			}
		})
	}
}

func TestRunLimits(t *testing.T) {
	s := runJSON(t, "-pages", "300", "-max-pages", "40")
	if !s.CheckOK || s.Pages+s.Failed != 40 {
		t.Errorf("-max-pages 40: %d pages, %d failed, check %q", s.Pages, s.Failed, s.Check)
	}
	s = runJSON(t, "-pages", "300", "-depth", "1", "-mode", "serial")
	site := crawler.NewSite(300, 1)
	if !s.CheckOK || s.Pages+s.Failed >= len(site.Reachable()) || s.Pages < 2 {
		t.Errorf("-depth 1: %d pages, %d failed, check %q", s.Pages, s.Failed, s.Check)
	}
}

func TestRunText(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-pages", "60"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"pages ", "fetch retries", "duplicate reports", "reassigned", "pages/s",
		"skipped links      robots.txt: ", "(deliberate: ",
		"check              ok: every page reported exactly once"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "progress: ") {
		t.Errorf("no plain progress line when not on a terminal:\n%s", out.String())
	}
}

func TestRunBadFlags(t *testing.T) {
	tests := [][]string{
		{"-mode", "bfs"},
		{"-workers", "0"},
		{"-max-pages", "-1"},
		{"-depth", "-2"},
		{"-loss", "1"},
		{"-loss", "NaN"},
		{"-dup", "1.5"},
		{"-delay", "-1s"},
		{"-net", "udp"},
		{"-mode", "serial", "-loss", "0.1"},
		{"-net", "tcp", "-loss", "0.1"},
		{"-url", "ftp://example.com/"},
		{"-url", "http://example.com/", "-pages", "10"},
		{"-pages", "0"},
		{"-nosuchflag"},
		{"extra"},
	}
	for _, args := range tests {
		var out bytes.Buffer
		err := run(args, &out)
		var uerr *usageError
		if !errors.As(err, &uerr) {
			t.Errorf("run %q = %v, want a usage error", args, err)
		}
	}
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-h"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "-mode") {
		t.Errorf("help lacks the flags:\n%s", out.String())
	}
}

// TestCheckSite shows that the check fails when it should.
func TestCheckSite(t *testing.T) {
	site := crawler.NewSite(40, 2)
	srv := httptest.NewServer(site)
	defer srv.Close()
	start := srv.URL + "/"
	var all []string
	for _, p := range append(site.Reachable(), site.Missing()...) {
		all = append(all, srv.URL+p)
	}
	var noIndex []string
	for _, p := range site.NoIndex() {
		noIndex = append(noIndex, srv.URL+p)
	}
	if problems, _ := checkSite(site, start, all, noIndex, true); len(problems) != 0 {
		t.Errorf("complete report: %q", problems)
	}
	if problems, _ := checkSite(site, start, all, nil, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "noindex pages reported []") {
		t.Errorf("the noindex page reported as indexed: %q", problems)
	}
	if problems, _ := checkSite(site, start, append(all, all[3]), noIndex, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "1 URLs reported twice") {
		t.Errorf("a URL reported twice: %q", problems)
	}
	if problems, _ := checkSite(site, start, all[1:], noIndex, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "1 reachable pages never reported") {
		t.Errorf("a page missing: %q", problems)
	}
	resp, err := srv.Client().Get(srv.URL + site.Disallowed()[0])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if problems, _ := checkSite(site, start, all, noIndex, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "robots.txt forbids") {
		t.Errorf("a forbidden page fetched: %q", problems)
	}
}
