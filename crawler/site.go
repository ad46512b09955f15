package crawler

import (
	"fmt"
	"html"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Site is a generated web site for tests and demos: an http.Handler serving
// n HTML pages with seeded random links between them, every page reachable
// from "/". It is built to catch crawler mistakes:
//
//   - links come in many spellings: absolute paths, relative paths with "..",
//     "./" and fragments, full URLs with an upper-case scheme and host, and
//     some pages carry a <base href> that relative links resolve against;
//   - robots.txt disallows /private/; private pages are linked (and a redirect
//     points at one) but must never be fetched, and they link to /secret/
//     pages that nothing else links to;
//   - /orphan/ pages are served but only mentioned outside <a href> (in
//     <link>, <img> and a text/plain file), so they must never be fetched;
//   - some pages (Flaky) answer 503 to their first request and 200 after;
//   - /missing.html answers 404 (final: one request, no retry);
//   - links to the same server under the host name "localhost" are off-host;
//   - one page (NoIndex) carries <meta name="robots" content="noindex">: it
//     must be fetched and its links followed, but it is not indexed.
//
// Site counts requests per path, safely for concurrent use, so a test can
// check that each page was fetched exactly once, and the most requests it
// served at once. Set Latency, CrawlDelay and Peers before serving.
//
// Several sites on different hosts make a multi-host web: give each the
// others' base URLs as Peers.
type Site struct {
	// Latency delays every response except robots.txt (the benchmark uses
	// 20ms). Set it before serving.
	Latency time.Duration
	// CrawlDelay, if positive, is announced in robots.txt. Set it before
	// serving.
	CrawlDelay time.Duration
	// Peers are the base URLs ("http://127.0.0.1:8081") of other sites. If
	// set, "/" and the pages with a <base href> link to each peer's "/", and
	// "/" also links to each peer's first disallowed page. A crawl allowed
	// on every peer's host then reaches each peer's Reachable pages too, and
	// none of its Disallowed or Unlinked ones. Set it before serving.
	Peers []string

	pages      map[string]*sitePage
	reachable  []string
	disallowed []string
	unlinked   []string
	flaky      []string
	noIndex    []string

	mu     sync.Mutex // protects following
	hits   map[string]int
	served map[string]int
	hosts  map[string]int
	failed map[string]bool // flaky pages that already answered 503

	inFlight    int // requests being served
	maxInFlight int // the most requests served at once
}

type sitePage struct {
	base     string     // <base href>, or ""
	links    []siteLink // <a href> targets
	status   int        // 0 means 200
	location string     // for redirects
	flaky    bool
	noIndex  bool   // carries <meta name="robots" content="noindex">
	text     string // non-empty: a text/plain body
}

type siteLink struct {
	target string // absolute path
	form   int    // spelling, see href
}

const (
	siteMissing       = "/missing.html"
	siteMoved         = "/moved.html"
	siteMovedPrivate  = "/moved-private.html"
	siteNotes         = "/static/notes.txt"
	siteRobotsPath    = "/robots.txt"
	siteLinkForms     = 7
	siteFormOffHost   = -1
	siteBaseDirectory = "/d0/"
)

// NewSite generates a site of n pages (at least 1) from seed.
func NewSite(n int, seed int64) *Site {
	n = max(n, 1)
	rng := rand.New(rand.NewSource(seed))
	s := &Site{
		pages:  make(map[string]*sitePage),
		hits:   make(map[string]int),
		served: make(map[string]int),
		hosts:  make(map[string]int),
		failed: make(map[string]bool),
	}
	paths := make([]string, n)
	for i := range paths {
		paths[i] = sitePagePath(i)
		p := &sitePage{flaky: rng.Intn(20) == 0}
		if i%7 == 3 {
			p.base = siteBaseDirectory
		}
		s.pages[paths[i]] = p
	}
	if n >= 2 {
		// Chosen without the generator, so that the rest of the site is
		// the same as before there was a noindex page.
		s.pages[paths[n/2]].noIndex = true
		s.noIndex = []string{paths[n/2]}
	}
	link := func(from, to string) {
		p := s.pages[from]
		p.links = append(p.links, siteLink{target: to, form: rng.Intn(siteLinkForms)})
	}
	// A random tree makes every page reachable from "/"; extra links add
	// cycles and pages linked many times.
	for i := 1; i < n; i++ {
		link(paths[rng.Intn(i)], paths[i])
	}
	for i := range paths {
		for range rng.Intn(4) {
			link(paths[i], paths[rng.Intn(n)])
		}
	}
	m := max(3, n/50)
	for k := range m {
		private, secret := fmt.Sprintf("/private/x%d.html", k), fmt.Sprintf("/secret/s%d.html", k)
		s.pages[private] = &sitePage{links: []siteLink{{target: secret}, {target: paths[rng.Intn(n)]}}}
		s.pages[secret] = &sitePage{}
		link(paths[rng.Intn(n)], private)
		orphan := fmt.Sprintf("/orphan/o%d.html", k)
		s.pages[orphan] = &sitePage{}
		s.disallowed = append(s.disallowed, private)
		s.unlinked = append(s.unlinked, secret, orphan)
	}
	s.pages[siteMissing] = &sitePage{status: http.StatusNotFound}
	s.pages[siteMoved] = &sitePage{status: http.StatusMovedPermanently, location: paths[n-1]}
	s.pages[siteMovedPrivate] = &sitePage{status: http.StatusFound, location: "/private/x0.html"}
	s.pages[siteNotes] = &sitePage{text: `see <a href="/orphan/o0.html">this</a>` + "\n"}
	for _, extra := range []string{siteMissing, siteMoved, siteMovedPrivate, siteNotes} {
		link("/", extra)
	}
	root := s.pages["/"]
	root.links = append(root.links, siteLink{target: paths[n-1], form: siteFormOffHost})

	for path, p := range s.pages {
		switch {
		case strings.HasPrefix(path, "/private/"), strings.HasPrefix(path, "/secret/"),
			strings.HasPrefix(path, "/orphan/"), path == siteMissing:
		default:
			s.reachable = append(s.reachable, path)
			if p.flaky {
				s.flaky = append(s.flaky, path)
			}
		}
	}
	sort.Strings(s.reachable)
	sort.Strings(s.flaky)
	return s
}

func sitePagePath(i int) string {
	if i == 0 {
		return "/"
	}
	return fmt.Sprintf("/d%d/p%d.html", i%10, i)
}

// Reachable returns the paths a correct polite crawl from "/" requests and
// gets a 2xx or 3xx answer for, each exactly once (flaky ones after one 503).
// It includes a text/plain file and two redirects.
func (s *Site) Reachable() []string { return append([]string(nil), s.reachable...) }

// Missing returns the linked paths that answer 404: requested once, never
// retried.
func (s *Site) Missing() []string { return []string{siteMissing} }

// Disallowed returns the linked paths robots.txt forbids: never requested.
func (s *Site) Disallowed() []string { return append([]string(nil), s.disallowed...) }

// Unlinked returns the served paths no allowed page links to: never requested.
func (s *Site) Unlinked() []string { return append([]string(nil), s.unlinked...) }

// NoIndex returns the paths of the Reachable pages that ask not to be
// indexed (<meta name="robots" content="noindex">): a crawl fetches them
// and follows their links, but lists them apart (Result.NoIndex). A site of
// one page has none.
func (s *Site) NoIndex() []string { return append([]string(nil), s.noIndex...) }

// Flaky returns the paths that answer 503 to their first request.
func (s *Site) Flaky() []string { return append([]string(nil), s.flaky...) }

// Hits returns how many requests path has received.
func (s *Site) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// Served returns how many requests for path got a 2xx or 3xx answer.
func (s *Site) Served(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path]
}

// HostHits returns how many requests arrived with the given Host header.
func (s *Site) HostHits(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[host]
}

// TotalHits returns how many requests the site received, robots.txt included.
func (s *Site) TotalHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, n := range s.hits {
		total += n
	}
	return total
}

// MaxInFlight returns the most requests the site served at once,
// robots.txt included.
func (s *Site) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Reset clears the counters and makes flaky pages fail once more.
func (s *Site) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.hits)
	clear(s.served)
	clear(s.hosts)
	clear(s.failed)
	s.maxInFlight = s.inFlight
}

// ServeHTTP implements http.Handler.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	p := s.pages[path]
	s.mu.Lock()
	s.hits[path]++
	s.hosts[r.Host]++
	fail := p != nil && p.flaky && !s.failed[path]
	if fail {
		s.failed[path] = true
	}
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	if path == siteRobotsPath {
		s.count(path)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "User-agent: *\nDisallow: /private/\n")
		if s.CrawlDelay > 0 {
			fmt.Fprintf(w, "Crawl-delay: %g\n", s.CrawlDelay.Seconds())
		}
		return
	}
	if s.Latency > 0 {
		t := time.NewTimer(s.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case p == nil:
		http.NotFound(w, r)
		return
	case fail:
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	case p.status == http.StatusNotFound:
		http.NotFound(w, r)
		return
	case p.location != "":
		s.count(path)
		http.Redirect(w, r, p.location, p.status)
		return
	case p.text != "":
		s.count(path)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, p.text)
		return
	}
	s.count(path)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><title>%s</title>\n", html.EscapeString(path))
	if p.base != "" {
		fmt.Fprintf(&b, "<base href=%q>\n", p.base)
	}
	if p.noIndex {
		fmt.Fprint(&b, "<meta name=\"robots\" content=\"noindex\">\n")
	}
	fmt.Fprintf(&b, "<link rel=\"stylesheet\" href=\"/orphan/o1.html\">\n</head><body>\n")
	fmt.Fprintf(&b, "<img src=\"/orphan/o2.html\" alt=\"\">\n<ul>\n")
	dir := p.base
	if dir == "" {
		dir = path[:strings.LastIndexByte(path, '/')+1]
	}
	for i, l := range p.links {
		fmt.Fprintf(&b, "<li><a href=\"%s\">link %d</a></li>\n", html.EscapeString(href(r.Host, dir, l)), i)
	}
	if path == "/" || p.base != "" {
		for _, peer := range s.Peers {
			peer = strings.TrimSuffix(peer, "/")
			fmt.Fprintf(&b, "<li><a href=\"%s/\">peer</a></li>\n", html.EscapeString(peer))
			if path == "/" {
				fmt.Fprintf(&b, "<li><a href=\"%s%s\">peer's private page</a></li>\n", html.EscapeString(peer), html.EscapeString(s.disallowed[0]))
			}
		}
	}
	fmt.Fprint(&b, "</ul></body></html>\n")
	fmt.Fprint(w, b.String())
}

func (s *Site) count(path string) {
	s.mu.Lock()
	s.served[path]++
	s.mu.Unlock()
}

// href spells a link to l.target in one of several equivalent ways, as seen
// from a page whose links resolve against dir.
func href(host, dir string, l siteLink) string {
	t := l.target
	switch l.form {
	case siteFormOffHost:
		_, port, _ := strings.Cut(host, ":")
		return "http://localhost:" + port + t
	case 1:
		return relativePath(dir, t)
	case 2:
		return t + "#section-2"
	case 3:
		return "HTTP://" + strings.ToUpper(host) + t
	case 4:
		return "./" + relativePath(dir, t) + "#top"
	case 5:
		return "/d3/./../" + strings.TrimPrefix(t, "/")
	case 6:
		// More ".." than there are directories: they stop at the root.
		return strings.Repeat("../", strings.Count(dir, "/")+1) + strings.TrimPrefix(t, "/")
	}
	return t
}

// relativePath spells target (an absolute path) relative to directory dir.
func relativePath(dir, target string) string {
	from := strings.Split(strings.Trim(dir, "/"), "/")
	if dir == "/" {
		from = nil
	}
	to := strings.Split(strings.TrimPrefix(target, "/"), "/")
	common := 0
	for common < len(from) && common < len(to)-1 && from[common] == to[common] {
		common++
	}
	rel := strings.Repeat("../", len(from)-common) + strings.Join(to[common:], "/")
	if rel == "" {
		return "./"
	}
	return rel
}
