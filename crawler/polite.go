package crawler

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/temoto/robotstxt"
	"golang.org/x/time/rate"
)

// ErrDisallowed is wrapped by the error a PoliteFetcher returns for a URL that
// robots.txt forbids (or for any URL of a host whose robots.txt could not be
// read); such a URL is never requested.
var ErrDisallowed = errors.New("crawler: disallowed by robots.txt")

// RobotsFetcher is implemented by fetchers that can also fetch robots.txt.
// Polite fetches robots.txt through it.
type RobotsFetcher interface {
	// FetchRobots GETs robotsURL, following redirects, and returns the
	// status and body of the final response.
	FetchRobots(ctx context.Context, robotsURL string) (statusCode int, body []byte, err error)
}

// PoliteFetcher wraps a Fetcher with the crawler's manners: robots.txt,
// same-host filtering, per-host concurrency and rate limits, and retries.
// Create it with Polite. It is safe for concurrent use.
type PoliteFetcher struct {
	inner  Fetcher
	robots RobotsFetcher // nil when cfg.IgnoreRobots
	cfg    Config

	requests atomic.Int64 // page requests started, retries included
	retries  atomic.Int64 // page requests that repeated a failed one

	mu    sync.Mutex // protects following
	hosts map[string]*hostState
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

var _ Fetcher = (*PoliteFetcher)(nil)

// hostState is the per-host politeness state.
type hostState struct {
	agent   string
	slots   chan struct{} // in-flight requests; nil if unlimited
	limiter *rate.Limiter

	loaded chan struct{}         // closed once robots and robotsErr are set
	robots *robotstxt.RobotsData // nil: everything allowed
	// robotsErr is why robots.txt could not be read; every URL of the host is
	// then refused.
	robotsErr error
	// abandoned: the loader's own context ended, so robotsErr says nothing
	// about the host; the state is no longer in PoliteFetcher.hosts.
	abandoned bool
}

// Polite returns f wrapped with the politeness rules of cfg (nil means
// DefaultConfig()). Unless cfg.IgnoreRobots is set, f must implement
// RobotsFetcher.
//
// Unless cfg.AllowOtherHosts is set, Fetch drops from a page's links those on
// another host (scheme://host:port) than the page, so a crawl never leaves the
// start URL's host. Links that an already loaded robots.txt disallows are
// dropped too, and Fetch of a disallowed URL fails with ErrDisallowed without
// any request. robots.txt is fetched once per host and PoliteFetcher.
func Polite(f Fetcher, cfg *Config) (*PoliteFetcher, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &PoliteFetcher{inner: f, cfg: c, hosts: make(map[string]*hostState)}
	if !c.IgnoreRobots {
		rf, ok := f.(RobotsFetcher)
		if !ok {
			return nil, errors.New("crawler: Polite: fetcher cannot fetch robots.txt (implement RobotsFetcher or set IgnoreRobots)")
		}
		p.robots = rf
	}
	return p, nil
}

// Fetch fetches rawURL politely: it checks the host and robots.txt, waits
// for a slot and for the host's rate limiter, and retries retryable failures
// with exponential backoff. The links it returns are filtered by the same
// host and robots rules.
func (p *PoliteFetcher) Fetch(ctx context.Context, rawURL string) ([]string, error) {
	u, err := normalizeParse(rawURL)
	if err != nil {
		return nil, err
	}
	h, err := p.host(ctx, u)
	if err != nil {
		return nil, err
	}
	if err := h.allowed(u); err != nil {
		return nil, err
	}
	attempts := 0
	links, err := p.retry(ctx, func() ([]string, error) {
		if err := h.acquire(ctx); err != nil {
			return nil, err
		}
		defer h.release()
		if attempts++; attempts > 1 {
			p.retries.Add(1)
		}
		p.requests.Add(1)
		return p.inner.Fetch(ctx, u.String())
	})
	if err != nil {
		return nil, err
	}
	return p.filter(u, links), nil
}

// filter drops off-host links and links disallowed by an already loaded
// robots.txt. Links whose host's robots.txt is not loaded yet are kept; Fetch
// checks them before any request.
func (p *PoliteFetcher) filter(page *url.URL, links []string) []string {
	kept := links[:0:0]
	for _, link := range links {
		u, err := url.Parse(link)
		if err != nil || (!p.cfg.AllowOtherHosts && hostKey(u) != hostKey(page)) {
			continue
		}
		p.mu.Lock()
		h := p.hosts[hostKey(u)]
		p.mu.Unlock()
		if h != nil && h.isLoaded() && h.allowed(u) != nil {
			continue
		}
		kept = append(kept, link)
	}
	return kept
}

func hostKey(u *url.URL) string { return u.Scheme + "://" + u.Host }

// host returns the state of u's host, loading its robots.txt on first use.
// Concurrent callers for a new host wait for the one that loads it.
func (p *PoliteFetcher) host(ctx context.Context, u *url.URL) (*hostState, error) {
	key := hostKey(u)
	for {
		p.mu.Lock()
		h, ok := p.hosts[key]
		if !ok {
			h = &hostState{agent: p.cfg.UserAgent, loaded: make(chan struct{}), limiter: rate.NewLimiter(p.cfg.limit(0), 1)}
			if p.cfg.MaxInFlightPerHost > 0 {
				h.slots = make(chan struct{}, p.cfg.MaxInFlightPerHost)
			}
			p.hosts[key] = h
		}
		p.mu.Unlock()
		if !ok {
			p.loadRobots(ctx, key, h)
		}
		select {
		case <-h.loaded:
			if h.abandoned && ctx.Err() == nil {
				continue // another caller gave up loading it: load it again
			}
			return h, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *PoliteFetcher) loadRobots(ctx context.Context, key string, h *hostState) {
	defer close(h.loaded)
	if p.robots == nil {
		return
	}
	robotsURL := key + "/robots.txt"
	var data *robotstxt.RobotsData
	_, err := p.retry(ctx, func() ([]string, error) {
		if err := h.acquire(ctx); err != nil {
			return nil, err
		}
		defer h.release()
		status, body, err := p.robots.FetchRobots(ctx, robotsURL)
		if err != nil {
			return nil, err
		}
		if status >= 500 || status == 429 {
			// robotstxt reads 5xx as "disallow all"; try again first.
			return nil, &HTTPError{URL: robotsURL, StatusCode: status}
		}
		data, err = robotstxt.FromStatusAndBytes(status, []byte(unescapeUnreserved(string(body))))
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("crawler: parse %s: %w", robotsURL, err))
		}
		return nil, nil
	})
	if err != nil && ctx.Err() != nil {
		// Cancelled, not unavailable: let the next caller load it again.
		h.robotsErr = fmt.Errorf("crawler: load %s: %w", robotsURL, ctx.Err())
		h.abandoned = true
		p.mu.Lock()
		delete(p.hosts, key)
		p.mu.Unlock()
		return
	}
	if err != nil {
		// Without a readable robots.txt, assume nothing may be crawled.
		h.robotsErr = fmt.Errorf("%w: robots.txt unavailable: %v", ErrDisallowed, err)
		return
	}
	h.robots = data
	if d := data.FindGroup(p.cfg.UserAgent).CrawlDelay; d > 0 {
		h.limiter.SetLimit(p.cfg.limit(d))
	}
}

func (h *hostState) isLoaded() bool {
	select {
	case <-h.loaded:
		return true
	default:
		return false
	}
}

// allowed reports, as an error wrapping ErrDisallowed, whether robots.txt
// forbids u. h must be loaded.
func (h *hostState) allowed(u *url.URL) error {
	if h.robotsErr != nil {
		return fmt.Errorf("%w (%s)", h.robotsErr, u)
	}
	if h.robots == nil {
		return nil
	}
	if !h.robots.TestAgent(unescapeUnreserved(u.RequestURI()), h.agent) {
		return fmt.Errorf("%w: %s", ErrDisallowed, u)
	}
	return nil
}

// unescapeUnreserved decodes the percent-escapes of unreserved characters
// (letters, digits, '-', '.', '_', '~'), which name the same resource
// escaped or not, so that robots.txt rules and URLs compare as RFC 9309
// asks: "/%70rivate" is "/private". Other escapes (such as "%2F") are kept.
func unescapeUnreserved(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && isUnreserved(byte(c)) {
				b.WriteByte(byte(c))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func (h *hostState) acquire(ctx context.Context) error {
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := h.limiter.Wait(ctx); err != nil {
		h.release()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

func (h *hostState) release() {
	if h.slots != nil {
		<-h.slots
	}
}

// retry runs op until it succeeds, fails with an error that is not
// Retryable, MaxRetries retries have failed, RetryMaxElapsed has passed, or
// ctx is done. Each call gets its own BackOff: they are not safe to share.
// A 429 or 503 with Retry-After waits at least that long (up to
// MaxCrawlDelay) before the next try.
func (p *PoliteFetcher) retry(ctx context.Context, op func() ([]string, error)) ([]string, error) {
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.cfg.RetryInitialInterval),
		backoff.WithMaxInterval(p.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(p.cfg.RetryMaxElapsed),
	)
	ra := &retryAfterBackOff{BackOff: exp, max: p.cfg.MaxCrawlDelay}
	b := backoff.WithContext(backoff.WithMaxRetries(ra, uint64(p.cfg.MaxRetries)), ctx)
	return backoff.RetryWithData(func() ([]string, error) {
		links, err := op()
		if err != nil && !Retryable(err) {
			return nil, backoff.Permanent(err)
		}
		var he *HTTPError
		if errors.As(err, &he) {
			ra.hint = he.RetryAfter
		}
		return links, err
	}, b)
}

// retryAfterBackOff stretches the next wait to the server's Retry-After.
type retryAfterBackOff struct {
	backoff.BackOff
	max  time.Duration // cap on what a server may ask for
	hint time.Duration // the last failure's Retry-After; 0 for none
}

func (r *retryAfterBackOff) NextBackOff() time.Duration {
	d := r.BackOff.NextBackOff()
	if d == backoff.Stop {
		return d
	}
	if h := min(r.hint, r.max); h > d {
		d = h
	}
	r.hint = 0
	return d
}
