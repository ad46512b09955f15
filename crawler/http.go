package crawler

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is the User-Agent header and robots.txt agent name the
// crawler uses unless configured otherwise.
const DefaultUserAgent = "semrpc-crawler"

// DefaultMaxBodyBytes is how much of a response body HTTPFetcher reads by
// default; the rest is discarded unread.
const DefaultMaxBodyBytes = 2 << 20

// HTTPConfig configures an HTTPFetcher. A nil *HTTPConfig means
// DefaultHTTPConfig().
type HTTPConfig struct {
	// UserAgent is sent as the User-Agent header. Default DefaultUserAgent.
	UserAgent string
	// Timeout bounds each request, from dialling to the end of the body.
	// Default 10s.
	Timeout time.Duration
	// MaxBodyBytes is the most bytes read from a response body; a longer
	// body is truncated (Page.Truncated) and parsed as far as it was read.
	// Default DefaultMaxBodyBytes (2 MiB).
	MaxBodyBytes int64
	// Client, if not nil, is the HTTP client to use. HTTPFetcher makes a
	// shallow copy that does not follow redirects (a redirect is returned as
	// a page whose only link is its target, so the target goes through the
	// crawl's seen set and robots checks) and whose Timeout is Timeout.
	// Default: a client with its own transport, released by Close.
	Client *http.Client
}

// DefaultHTTPConfig returns the default HTTPFetcher configuration.
func DefaultHTTPConfig() *HTTPConfig {
	return &HTTPConfig{UserAgent: DefaultUserAgent, Timeout: 10 * time.Second, MaxBodyBytes: DefaultMaxBodyBytes}
}

func (c *HTTPConfig) validate() error {
	switch {
	case c.UserAgent == "":
		return errors.New("crawler: HTTPConfig.UserAgent is empty")
	case c.Timeout <= 0:
		return fmt.Errorf("crawler: HTTPConfig.Timeout %v must be positive", c.Timeout)
	case c.MaxBodyBytes <= 0:
		return fmt.Errorf("crawler: HTTPConfig.MaxBodyBytes %d must be positive", c.MaxBodyBytes)
	}
	return nil
}

// HTTPError is the error for a response whose status is neither 2xx nor 3xx.
type HTTPError struct {
	// URL is the URL that was requested.
	URL string
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// RetryAfter is the delay the server asked for in a Retry-After header
	// (delay-seconds or HTTP-date form), or zero.
	RetryAfter time.Duration
}

// Error implements error.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("crawler: GET %s: %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Retryable reports whether the same request may succeed later: true for 5xx
// and 429 Too Many Requests, false for every other status (a 4xx is final).
func (e *HTTPError) Retryable() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}

// Temporary is Retryable, under the name net.Error callers look for.
func (e *HTTPError) Temporary() bool { return e.Retryable() }

// Retryable reports whether a Fetch that failed with err is worth retrying:
// network errors and retryable HTTPErrors are; context cancellation, final
// HTTP statuses, robots.txt refusals, hosts backing off, host names that do
// not exist, malformed URLs and TLS failures that
// the same request would meet again (a certificate that fails verification,
// a server that does not speak TLS, a handshake the server refuses) are not.
//
// An HTTPFetcher request timeout is retryable; a bare context error is not
// (when the caller's own context ends, retrying stops anyway).
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Retryable()
	}
	if errors.Is(err, ErrDisallowed) || errors.Is(err, ErrUnsupportedURL) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrHostBackingOff) || isPermanentTLS(err) {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return false // no such host
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func isPermanentTLS(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		alert     tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record) || errors.As(err, &alert) ||
		errors.Is(err, http.ErrSchemeMismatch)
}

// Page is one fetched page as HTTPFetcher.FetchPage returns it.
type Page struct {
	// URL is the normalised URL that was fetched.
	URL string
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// ContentType is the media type of the body, without parameters.
	ContentType string
	// Links are the normalised http(s) links of an HTML page, or the target
	// of a redirect; empty for other content types and when NoFollow is set.
	// Links marked rel="nofollow" are left out.
	Links []string
	// NoFollow is true if an X-Robots-Tag header or a <meta name="robots">
	// (or one named after the user agent) says nofollow or none: the page's
	// links must not be followed.
	NoFollow bool
	// NoIndex is true if an X-Robots-Tag header or a <meta name="robots">
	// says noindex or none: the page may be crawled but not indexed.
	NoIndex bool
	// Skipped lists links of the page that are not in Links, and why
	// (nofollow; a PoliteFetcher adds robots.txt and other hosts), at most
	// MaxSkippedPerPage.
	Skipped []SkippedLink
	// Truncated is true if an HTML body was longer than MaxBodyBytes. The
	// body of a response whose Content-Type declares another media type is
	// not read at all.
	Truncated bool
}

// HTTPFetcher is a Fetcher over net/http. It is safe for concurrent use.
// It also implements RobotsFetcher, so Polite can fetch robots.txt through it.
type HTTPFetcher struct {
	cfg    HTTPConfig
	client *http.Client // does not follow redirects
	robots *http.Client // follows redirects, for robots.txt
	owned  *http.Transport
}

var (
	_ Fetcher       = (*HTTPFetcher)(nil)
	_ RobotsFetcher = (*HTTPFetcher)(nil)
	_ PageFetcher   = (*HTTPFetcher)(nil)
)

// NewHTTPFetcher returns an HTTPFetcher configured by cfg (nil means
// DefaultHTTPConfig()). Zero fields of cfg take their default values.
func NewHTTPFetcher(cfg *HTTPConfig) (*HTTPFetcher, error) {
	c := *DefaultHTTPConfig()
	if cfg != nil {
		if cfg.UserAgent != "" {
			c.UserAgent = cfg.UserAgent
		}
		if cfg.Timeout != 0 {
			c.Timeout = cfg.Timeout
		}
		if cfg.MaxBodyBytes != 0 {
			c.MaxBodyBytes = cfg.MaxBodyBytes
		}
		c.Client = cfg.Client
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	h := &HTTPFetcher{cfg: c}
	var base http.Client
	if c.Client != nil {
		base = *c.Client
	} else {
		h.owned = http.DefaultTransport.(*http.Transport).Clone()
		h.owned.MaxIdleConnsPerHost = 16
		base.Transport = h.owned
	}
	base.Timeout = c.Timeout
	robots := base
	h.robots = &robots
	base.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h.client = &base
	return h, nil
}

// Close releases the idle connections of the fetcher's own transport. It does
// nothing when HTTPConfig.Client was given.
func (h *HTTPFetcher) Close() error {
	if h.owned != nil {
		h.owned.CloseIdleConnections()
	}
	return nil
}

// Fetch implements Fetcher: it returns FetchPage's links.
func (h *HTTPFetcher) Fetch(ctx context.Context, rawURL string) ([]string, error) {
	p, err := h.FetchPage(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	return p.Links, nil
}

// FetchPage GETs rawURL (normalised first) and parses the links of an HTML
// body. A body whose Content-Type header declares another media type is not
// downloaded; one without a usable Content-Type is sniffed. The page's
// X-Robots-Tag headers and <meta name="robots"> tags are honoured (see Page).
// A 3xx with a Location yields that target as the only link; other non-2xx
// statuses fail with *HTTPError.
func (h *HTTPFetcher) FetchPage(ctx context.Context, rawURL string) (*Page, error) {
	u, err := normalizeParse(rawURL)
	if err != nil {
		return nil, err
	}
	resp, err := h.get(ctx, h.client, u.String())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	page := &Page{URL: u.String(), StatusCode: resp.StatusCode}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		if loc, err := resp.Location(); err == nil {
			if link, err := normalizeURL(loc); err == nil {
				page.Links = []string{link}
			}
		}
		h.discard(resp)
		return page, nil
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		h.discard(resp)
		return nil, &HTTPError{URL: page.URL, StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header, time.Now())}
	}
	robots := xRobotsTag(resp.Header.Values("X-Robots-Tag"), h.cfg.UserAgent)
	if mt, ok := declaredMediaType(resp.Header.Get("Content-Type")); ok && !isHTML(mt) {
		// Not HTML: no links to find, so the body is not downloaded.
		page.ContentType = mt
		page.NoIndex = robots.noIndex
		h.discard(resp)
		return page, nil
	}

	body := io.LimitReader(resp.Body, h.cfg.MaxBodyBytes)
	head := make([]byte, 512)
	n, err := io.ReadFull(body, head)
	head = head[:n]
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("crawler: read %s: %w", page.URL, err)
	}
	page.ContentType = mediaType(resp.Header.Get("Content-Type"), head)
	counted := &countingReader{r: io.MultiReader(bytes.NewReader(head), body)}
	if isHTML(page.ContentType) {
		doc, err := extract(u, counted, h.cfg.UserAgent)
		if err != nil {
			return nil, fmt.Errorf("crawler: read %s: %w", page.URL, err)
		}
		page.Links = doc.links
		for _, l := range doc.noFollow {
			page.Skipped = append(page.Skipped, SkippedLink{URL: l, Reason: SkipNoFollow})
		}
		robots.noFollow = robots.noFollow || doc.robots.noFollow
		robots.noIndex = robots.noIndex || doc.robots.noIndex
	}
	page.NoFollow, page.NoIndex = robots.noFollow, robots.noIndex
	if page.NoFollow {
		for _, l := range page.Links {
			if len(page.Skipped) == MaxSkippedPerPage {
				break
			}
			page.Skipped = append(page.Skipped, SkippedLink{URL: l, Reason: SkipNoFollow})
		}
		page.Links = nil
	}
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return nil, fmt.Errorf("crawler: read %s: %w", page.URL, err)
	}
	if counted.n >= h.cfg.MaxBodyBytes {
		// Peek one byte past the limit to tell "exactly MaxBodyBytes" from "more".
		var one [1]byte
		if n, _ := resp.Body.Read(one[:]); n > 0 {
			page.Truncated = true
		}
	}
	return page, nil
}

// MaxRobotsBytes is how much of a robots.txt file is read; the rest is
// ignored, as RFC 9309 allows beyond 500 KiB. A longer file's last,
// partial line is dropped. (Parsed, a robots.txt costs many times its size
// in memory: 2 MiB of wildcard rules took 143 MiB of heap, 500 KiB 33 MiB.)
const MaxRobotsBytes = 500 << 10

// FetchRobots implements RobotsFetcher. It follows redirects (at most 10)
// and returns at most MaxRobotsBytes (or MaxBodyBytes, if smaller) of the
// body, without a partial last line.
func (h *HTTPFetcher) FetchRobots(ctx context.Context, robotsURL string) (int, []byte, error) {
	resp, err := h.get(ctx, h.robots, robotsURL)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	// One byte more tells a file of exactly MaxRobotsBytes from a longer one.
	body, err := io.ReadAll(io.LimitReader(resp.Body, min(h.cfg.MaxBodyBytes, MaxRobotsBytes+1)))
	if err != nil {
		return 0, nil, fmt.Errorf("crawler: read %s: %w", robotsURL, err)
	}
	h.drain(resp.Body)
	return resp.StatusCode, robotsPrefix(body), nil
}

func (h *HTTPFetcher) get(ctx context.Context, client *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedURL, err)
	}
	req.Header.Set("User-Agent", h.cfg.UserAgent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
	return client.Do(req)
}

// drain reads what is left of a body, up to the size limit, so that the
// connection can be reused.
func (h *HTTPFetcher) drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, h.cfg.MaxBodyBytes))
}

func normalizeParse(raw string) (*url.URL, error) {
	n, err := Normalize(raw)
	if err != nil {
		return nil, err
	}
	return url.Parse(n)
}

// smallBody is the most of an unwanted body that is read to keep the
// connection for the next request; a larger one is dropped with it.
const smallBody = 4 << 10

// discard gets rid of a body that is not wanted: a short one is read to
// its end, so that the connection can be reused; a longer or unknown one is
// closed unread, which closes its connection too.
func (h *HTTPFetcher) discard(resp *http.Response) {
	if resp.ContentLength >= 0 && resp.ContentLength <= smallBody {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, smallBody))
	}
}

func isHTML(mediaType string) bool {
	return mediaType == "text/html" || mediaType == "application/xhtml+xml"
}

// declaredMediaType returns the media type of a Content-Type header, and
// false if the header is missing or unparseable (the body must be sniffed).
func declaredMediaType(header string) (string, bool) {
	if header == "" {
		return "", false
	}
	mt, _, err := mime.ParseMediaType(header)
	return mt, err == nil
}

// mediaType returns the media type from a Content-Type header, sniffing the
// body's first bytes when the header is missing or unparseable.
func mediaType(header string, head []byte) string {
	if mt, ok := declaredMediaType(header); ok {
		return mt
	}
	mt, _, _ := mime.ParseMediaType(http.DetectContentType(head))
	return mt
}

// retryAfter returns the wait a Retry-After header asks for, in either of
// its forms: delay-seconds, or an HTTP-date, which is read against the
// response's Date header (the server's clock) when there is one, else
// against now. A missing, malformed or past value is zero.
func retryAfter(header http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		return time.Duration(min(secs, uint64(math.MaxInt64/time.Second))) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(header.Get("Date")); err == nil {
		now = date
	}
	return max(t.Sub(now), 0)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
