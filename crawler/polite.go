package crawler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/temoto/robotstxt"
)

// ErrDisallowed is wrapped by the error a PoliteFetcher returns for a URL that
// robots.txt forbids (or for any URL of a host whose robots.txt could not be
// read); such a URL is never requested.
var ErrDisallowed = errors.New("crawler: disallowed by robots.txt")

// ErrRobotsUnavailable is wrapped, with ErrDisallowed, by the error for a URL
// whose host's robots.txt could not be read for a transient reason (a 5xx, a
// 429, a lost connection; after Config.MaxRetries): the URL may succeed
// later, and the host's next Fetch reads robots.txt again.
var ErrRobotsUnavailable = errors.New("crawler: robots.txt unavailable")

// ErrHostBackingOff is wrapped by the error a PoliteFetcher returns, without
// any request, for a URL whose host asked (with Retry-After) or was set
// (with SetHostNotBefore) to be left alone for longer than
// Config.RetryMaxElapsed from now. Such a fetch may succeed later; it is not
// Retryable, because retrying it at once cannot.
var ErrHostBackingOff = errors.New("crawler: host asked to be left alone")

// ErrHostUnreachable is wrapped, with ErrDisallowed, by the error for a URL
// whose host could not be reached when its robots.txt was requested (the
// connection was refused or timed out, or the host does not exist): the
// error says "host unreachable", not that robots.txt forbade anything. If
// the failure was transient (anything but a host that does not exist), it
// wraps ErrRobotsUnavailable too.
var ErrHostUnreachable = errors.New("crawler: host unreachable")

// robotsFailure is why nothing of a host may be fetched: its robots.txt
// could not be read, because the host was unreachable (ErrHostUnreachable)
// or for another reason (ErrRobotsUnavailable).
type robotsFailure struct {
	kind      error // ErrHostUnreachable or ErrRobotsUnavailable
	transient bool  // the next Fetch reads robots.txt again
	err       error
}

func (e *robotsFailure) Error() string { return e.kind.Error() + ": " + e.err.Error() }
func (e *robotsFailure) Unwrap() error { return e.err }

// Is makes the failure ErrDisallowed (nothing of the host is fetched), its
// kind, and ErrRobotsUnavailable if transient.
func (e *robotsFailure) Is(target error) bool {
	return target == ErrDisallowed || target == e.kind || (e.transient && target == ErrRobotsUnavailable)
}

// unreachable reports whether err, from a robots.txt request, means the
// host could not be reached at all (no HTTP status came back).
func unreachable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return false
	}
	var dns *net.DNSError
	var op *net.OpError
	return errors.As(err, &dns) || errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// RobotsFetcher is implemented by fetchers that can also fetch robots.txt.
// Polite fetches robots.txt through it.
type RobotsFetcher interface {
	// FetchRobots GETs robotsURL, following redirects, and returns the
	// status and body of the final response.
	FetchRobots(ctx context.Context, robotsURL string) (statusCode int, body []byte, err error)
}

// PageFetcher is implemented by fetchers that can tell what a response was
// (HTTPFetcher and PoliteFetcher do). When the fetcher given to Polite
// implements it, PoliteFetcher uses FetchPage instead of Fetch, so that it
// knows which responses were redirects: a redirect's target is followed to
// the www or apex variant of the page's host (see Polite). The strategies
// and the distributed workers use FetchPage too, so that a page whose
// NoIndex is set is crawled but kept out of the index (Result.NoIndex,
// ReportArgs.NoIndex). It is optional: a plain Fetcher's pages are all
// indexed.
type PageFetcher interface {
	// FetchPage fetches url and tells what the response was; a redirect
	// is a *Page with a 3xx StatusCode whose Links hold its target.
	FetchPage(ctx context.Context, url string) (*Page, error)
}

// PoliteFetcher wraps a Fetcher with the crawler's manners: robots.txt,
// host filtering, per-host concurrency and pacing, and retries.
// Create it with Polite. It is safe for concurrent use.
type PoliteFetcher struct {
	inner  Fetcher
	pages  PageFetcher   // inner, if it is one
	robots RobotsFetcher // nil when cfg.IgnoreRobots
	cfg    Config
	now    func() time.Time

	requests atomic.Int64 // page requests started, retries included
	retries  atomic.Int64 // page requests that repeated a failed one

	mu      sync.Mutex // protects following
	hosts   map[string]*hostState
	allowed map[string]bool // hosts links may lead to from any page
	// redirected maps each host that is in allowed only because a
	// redirect led there from its www or apex variant to that variant. A
	// redirect from such a host allows only the way back, not a variant of
	// its own ("www.www.example.com").
	redirected map[string]string
}

// PoliteStats are a PoliteFetcher's counters. robots.txt requests are not
// counted.
type PoliteStats struct {
	// Requests counts page requests passed to the wrapped Fetcher, retries
	// included.
	Requests int64
	// Retries counts the requests that repeated one that had failed with a
	// retryable error.
	Retries int64
}

// Stats returns the counters.
func (p *PoliteFetcher) Stats() PoliteStats {
	return PoliteStats{Requests: p.requests.Load(), Retries: p.retries.Load()}
}

var (
	_ Fetcher     = (*PoliteFetcher)(nil)
	_ PageFetcher = (*PoliteFetcher)(nil)
)

// Polite returns f wrapped with the politeness rules of cfg (nil means
// DefaultConfig()). Unless cfg.IgnoreRobots is set, f must implement
// RobotsFetcher.
//
// Fetch keeps only some of a page's links. Unless cfg.AllowOtherHosts is
// set, a link is kept if it is on the page's own host (any scheme), on a
// host of cfg.AllowedHosts or of AllowHosts, on the host of a URL that
// Fetch was asked for (so a crawl's start hosts, whatever drives it), or if
// it is the target of a redirect to the www or apex variant of the page's
// host (example.com to www.example.com, or back), which then becomes allowed
// too (but a host allowed that way does not pass it on to its own www
// variant); redirects are only recognised when f implements PageFetcher. Links that an already loaded robots.txt disallows
// are dropped too, and Fetch of a disallowed URL fails with ErrDisallowed
// without any request. robots.txt is fetched once per origin and
// PoliteFetcher, and again once Config.RobotsTTL has passed.
//
// Politeness is per host (host and port, see HostKey): all schemes of a
// host share its in-flight limit and its pacing.
func Polite(f Fetcher, cfg *Config) (*PoliteFetcher, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &PoliteFetcher{
		inner:   f,
		cfg:     c,
		now:     time.Now,
		hosts:   make(map[string]*hostState),
		allowed: make(map[string]bool),

		redirected: make(map[string]string),
	}
	p.pages, _ = f.(PageFetcher)
	if !c.IgnoreRobots {
		rf, ok := f.(RobotsFetcher)
		if !ok {
			return nil, errors.New("crawler: Polite: fetcher cannot fetch robots.txt (implement RobotsFetcher or set IgnoreRobots)")
		}
		p.robots = rf
	}
	if err := p.AllowHosts(c.AllowedHosts...); err != nil {
		return nil, err
	}
	return p, nil
}

// HostKey returns the host under which a PoliteFetcher keeps the politeness
// state of rawURL: its normalised host and port, without the default port
// ("example.com", "127.0.0.1:8080"). A bare host[:port] is accepted as well
// as a URL.
func HostKey(rawURL string) (string, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	u, err := normalizeParse(rawURL)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

// AllowHosts adds hosts (host[:port] or URLs, see HostKey) to those that
// links may lead to from any page. It is safe to call while fetching.
func (p *PoliteFetcher) AllowHosts(hosts ...string) error {
	keys := make([]string, 0, len(hosts))
	for _, h := range hosts {
		k, err := HostKey(h)
		if err != nil {
			return fmt.Errorf("crawler: allowed host %q: %w", h, err)
		}
		keys = append(keys, k)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		p.allowed[k] = true
	}
	return nil
}

// HostPacing reports the pacing of host (a HostKey, or anything HostKey
// accepts): next is the earliest time at which a request to it may start,
// given the host's interval (Config.Delay or robots.txt's Crawl-delay) and
// any Retry-After backoff, and inFlightLimit is how many requests may be in
// flight to it at once. A host this PoliteFetcher has not met yet reports
// the zero time and Config.MaxInFlightPerHost.
//
// With SetHostNotBefore, it lets the host's pacing move from one
// PoliteFetcher to another, as when a crawl coordinator hands a host to
// another worker: call HostPacing on the old owner and SetHostNotBefore with
// its next on the new one.
func (p *PoliteFetcher) HostPacing(host string) (next time.Time, inFlightLimit int) {
	key, err := HostKey(host)
	if err != nil {
		return time.Time{}, p.cfg.MaxInFlightPerHost
	}
	p.mu.Lock()
	h := p.hosts[key]
	p.mu.Unlock()
	if h == nil {
		return time.Time{}, p.cfg.MaxInFlightPerHost
	}
	return h.pacing(p.now())
}

// SetHostNotBefore makes requests to host (see HostPacing) start no sooner
// than t. It only ever delays: an earlier t than the host's own pacing
// changes nothing.
func (p *PoliteFetcher) SetHostNotBefore(host string, t time.Time) error {
	key, err := HostKey(host)
	if err != nil {
		return err
	}
	p.host(key).seed(t)
	return nil
}

// Fetch fetches rawURL politely: it checks robots.txt, waits for a slot and
// for the host's pacing, and retries retryable failures with exponential
// backoff. The links it returns are filtered by the host and robots rules.
// If the host is held back for longer than RetryMaxElapsed, Fetch fails at
// once with ErrHostBackingOff instead of waiting. It returns FetchPage's
// links.
func (p *PoliteFetcher) Fetch(ctx context.Context, rawURL string) ([]string, error) {
	page, err := p.FetchPage(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	return page.Links, nil
}

// FetchPage implements PageFetcher: it fetches rawURL as Fetch does and
// returns the page with its links filtered. If the wrapped fetcher is a
// PageFetcher, the page is the one it returned (with its NoIndex and
// StatusCode); otherwise only URL and Links are set.
func (p *PoliteFetcher) FetchPage(ctx context.Context, rawURL string) (*Page, error) {
	u, err := normalizeParse(rawURL)
	if err != nil {
		return nil, err
	}
	// A URL is fetched only if its host may be entered, or if it is where a
	// crawl starts: either way, links back to its host are kept.
	p.mu.Lock()
	p.allowed[u.Host] = true
	p.mu.Unlock()
	h := p.host(u.Host)
	if until := h.heldUntil(); until.Sub(p.now()) > p.cfg.RetryMaxElapsed {
		return nil, fmt.Errorf("%w: %s until %s", ErrHostBackingOff, u.Host, until.Format(time.RFC3339))
	}
	rules, err := p.rules(ctx, h, u)
	if err != nil {
		return nil, err
	}
	if err := rules.allowed(u, p.cfg.UserAgent); err != nil {
		return nil, err
	}
	attempts := 0
	var page *Page
	err = p.retry(ctx, h, func() error {
		if err := p.acquire(ctx, h); err != nil {
			return err
		}
		defer h.release()
		if attempts++; attempts > 1 {
			p.retries.Add(1)
		}
		p.requests.Add(1)
		if p.pages == nil {
			links, err := p.inner.Fetch(ctx, u.String())
			page = &Page{URL: u.String(), Links: links}
			return err
		}
		var err error
		page, err = p.pages.FetchPage(ctx, u.String())
		if err == nil && page == nil {
			err = fmt.Errorf("crawler: FetchPage %s returned no page and no error", u)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := *page
	out.Skipped = slices.Clone(page.Skipped)
	out.Links = p.filter(u, page.Links, page.StatusCode >= 300 && page.StatusCode < 400, &out.Skipped)
	return &out, nil
}

// filter keeps the links that may be followed from page: see Polite.
// Links whose host's robots.txt is not loaded yet, or could not be read for
// a transient reason, are kept; Fetch checks them before any request.
func (p *PoliteFetcher) filter(page *url.URL, links []string, redirect bool, skipped *[]SkippedLink) []string {
	kept := links[:0:0]
	skip := func(link, reason string) {
		if len(*skipped) < MaxSkippedPerPage {
			*skipped = append(*skipped, SkippedLink{URL: link, Reason: reason})
		}
	}
	for _, link := range links {
		// Hosts are compared in normal form: a Fetcher other than
		// HTTPFetcher may return links as written ("HTTP://Host:80/").
		u, err := normalizeParse(link)
		if err != nil {
			continue
		}
		if !p.mayEnter(page, u, redirect) {
			skip(link, SkipOtherHost)
			continue
		}
		p.mu.Lock()
		h := p.hosts[u.Host]
		p.mu.Unlock()
		if h != nil && p.robots != nil {
			if r := h.loadedRules(u.Scheme); r != nil && !errors.Is(r.err, ErrRobotsUnavailable) && r.allowed(u, p.cfg.UserAgent) != nil {
				reason := SkipRobots
				if errors.Is(r.err, ErrHostUnreachable) {
					reason = SkipUnreachable // for good: the host does not exist
				}
				skip(link, reason)
				continue
			}
		}
		kept = append(kept, link)
	}
	return kept
}

// mayEnter reports whether a link from page to u may be followed, by the
// host rules of Polite.
func (p *PoliteFetcher) mayEnter(page, u *url.URL, redirect bool) bool {
	if p.cfg.AllowOtherHosts || u.Host == page.Host {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.allowed[u.Host] {
		return true
	}
	if !redirect || !wwwVariants(page.Host, u.Host) {
		return false
	}
	if from, ok := p.redirected[page.Host]; ok && from != u.Host {
		return false
	}
	p.allowed[u.Host] = true
	if _, ok := p.redirected[page.Host]; !ok {
		p.redirected[u.Host] = page.Host
	}
	return true
}

// wwwVariants reports whether a and b differ only by a "www." in front.
func wwwVariants(a, b string) bool {
	return a == "www."+b || b == "www."+a
}

// host returns the state of the host key, creating it on first use.
func (p *PoliteFetcher) host(key string) *hostState {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[key]
	if h == nil {
		h = newHostState(p.cfg.MaxInFlightPerHost, p.cfg.Delay)
		p.hosts[key] = h
	}
	return h
}

// rules returns the robots.txt rules for u's origin, loading them if they
// are missing or expired. Concurrent callers wait for the one that loads
// them. nil rules allow everything.
func (p *PoliteFetcher) rules(ctx context.Context, h *hostState, u *url.URL) (*robotsRules, error) {
	if p.robots == nil {
		return nil, nil
	}
	for {
		r, load := h.rulesFor(u.Scheme, p.now())
		if load {
			p.loadRobots(ctx, h, r, u)
		}
		select {
		case <-r.done:
			if !r.abandoned {
				return r, nil
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// Another caller gave up loading them: load them again.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *PoliteFetcher) loadRobots(ctx context.Context, h *hostState, r *robotsRules, u *url.URL) {
	robotsURL := u.Scheme + "://" + u.Host + "/robots.txt"
	var data *robotstxt.RobotsData
	err := p.retry(ctx, h, func() error {
		if err := p.acquire(ctx, h); err != nil {
			return err
		}
		defer h.release()
		status, body, err := p.robots.FetchRobots(ctx, robotsURL)
		if err != nil {
			return err
		}
		if status >= 500 || status == http.StatusTooManyRequests {
			// robotstxt reads 5xx as "disallow all"; try again first.
			return &HTTPError{URL: robotsURL, StatusCode: status}
		}
		data, err = robotstxt.FromStatusAndBytes(status, []byte(normalizeEscapes(string(robotsPrefix(body)))))
		if err != nil {
			return backoff.Permanent(fmt.Errorf("crawler: parse %s: %w", robotsURL, err))
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		// Cancelled, not unavailable: let the next caller load it again.
		h.robotsAbandoned(r, u.Scheme, fmt.Errorf("crawler: load %s: %w", robotsURL, ctx.Err()))
		return
	}
	expires := p.now().Add(p.cfg.robotsTTL())
	if err != nil {
		// Without a readable robots.txt, assume nothing may be crawled. A
		// transient failure holds only for the callers that waited for this
		// load: the next one loads robots.txt again.
		failure := &robotsFailure{kind: ErrRobotsUnavailable, err: err}
		if unreachable(err) {
			failure.kind = ErrHostUnreachable
		}
		if Retryable(err) {
			expires = p.now()
			failure.transient = true
		}
		h.robotsLoaded(r, u.Scheme, nil, failure, 0, expires)
		return
	}
	h.robotsLoaded(r, u.Scheme, data, nil, p.cfg.capDelay(data.FindGroup(p.cfg.UserAgent).CrawlDelay), expires)
}

// robotsPrefix returns the part of a robots.txt body that is parsed: all
// of it up to MaxRobotsBytes, else its first MaxRobotsBytes without the
// last, partial line (a cut rule could say something else).
func robotsPrefix(body []byte) []byte {
	if len(body) <= MaxRobotsBytes {
		return body
	}
	body = body[:MaxRobotsBytes]
	if i := bytes.LastIndexAny(body, "\r\n"); i >= 0 {
		return body[:i+1]
	}
	return nil
}

// allowed reports, as an error wrapping ErrDisallowed, whether robots.txt
// forbids u. r must be loaded; nil rules allow everything.
func (r *robotsRules) allowed(u *url.URL, agent string) error {
	if r == nil {
		return nil
	}
	if r.err != nil {
		return fmt.Errorf("%w (%s)", r.err, u)
	}
	if r.data == nil {
		return nil
	}
	if !r.data.TestAgent(normalizeEscapes(u.RequestURI()), agent) {
		return fmt.Errorf("%w: %s", ErrDisallowed, u)
	}
	return nil
}

// acquire takes one of h's in-flight slots and waits until h's pacing lets
// a request start, reserving again if the host was held back (Retry-After,
// SetHostNotBefore) while it waited. On success the caller must call
// h.release.
func (p *PoliteFetcher) acquire(ctx context.Context, h *hostState) error {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		r := h.start(p.now())
		if d := r.at.Sub(p.now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				h.unstart(r)
				h.release()
				return ctx.Err()
			}
		}
		// A Retry-After may have come while this request waited.
		if h.begin(p.now(), r) {
			return nil
		}
	}
}

func (h *hostState) release() { <-h.slots }

// retry runs op until it succeeds, fails with an error that is not
// Retryable, MaxRetries retries have failed, RetryMaxElapsed has passed, or
// ctx is done. Each call gets its own BackOff: they are not safe to share.
//
// A 429 or 503 with Retry-After holds back every request to the host (not
// only this one) for that long, capped by MaxCrawlDelay unless it is zero.
// If that wait would end after RetryMaxElapsed, op is not retried.
func (p *PoliteFetcher) retry(ctx context.Context, h *hostState, op func() error) error {
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.cfg.RetryInitialInterval),
		backoff.WithMaxInterval(p.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(p.cfg.RetryMaxElapsed),
	)
	b := backoff.WithContext(backoff.WithMaxRetries(exp, uint64(p.cfg.MaxRetries)), ctx)
	giveUp := p.now().Add(p.cfg.RetryMaxElapsed)
	return backoff.Retry(func() error {
		err := op()
		if err == nil {
			return nil
		}
		var he *HTTPError
		if errors.As(err, &he) && he.RetryAfter > 0 && he.Retryable() {
			until := h.backOff(p.now(), p.cfg.capDelay(he.RetryAfter))
			if until.After(giveUp) {
				return backoff.Permanent(fmt.Errorf("%w (Retry-After ends after RetryMaxElapsed %v)", err, p.cfg.RetryMaxElapsed))
			}
		}
		if !Retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
}
