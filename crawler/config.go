package crawler

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// DefaultRobotsTTL is how long robots.txt rules are used before they are
// fetched again, unless Config.RobotsTTL says otherwise.
const DefaultRobotsTTL = 24 * time.Hour

// Config configures a Crawler and the PoliteFetcher it uses. A nil *Config
// means DefaultConfig(); a non-nil one is used as given and must pass
// validation, so start from DefaultConfig() and change fields.
//
// The defaults follow Scrapy's: up to 8 requests in flight per host and no
// fixed delay between them unless robots.txt's Crawl-delay or Delay asks for
// one.
type Config struct {
	// UserAgent names the crawler in the User-Agent header and is the agent
	// robots.txt groups are matched against. Default DefaultUserAgent.
	UserAgent string
	// IgnoreRobots turns robots.txt off entirely (for local benchmarks and
	// sites you own). Default false.
	IgnoreRobots bool
	// AllowOtherHosts lets the crawl follow links to any host. Default
	// false: the crawl stays on the start URL's host and AllowedHosts.
	AllowOtherHosts bool
	// AllowedHosts lists hosts ("example.org", "127.0.0.1:8080", or URLs
	// whose host is meant) that links may lead to besides the start URL's
	// host. Redirects are followed within them, and from a host to its www
	// or apex variant. Default none.
	AllowedHosts []string
	// MaxInFlightPerHost bounds concurrent requests to one host; it must be
	// at least 1. Default 8.
	MaxInFlightPerHost int
	// Delay is the minimum interval between the starts of two requests to
	// the same host; zero means none. A larger robots.txt Crawl-delay wins.
	// Default 0.
	Delay time.Duration
	// MaxCrawlDelay caps the Crawl-delay a robots.txt may impose, and the
	// wait a Retry-After header may ask for, so that a hostile server cannot
	// stall the crawl; zero means no cap. Default 10s.
	MaxCrawlDelay time.Duration
	// RobotsTTL is how long a host's robots.txt rules are used before they
	// are fetched again; zero means DefaultRobotsTTL (24h).
	RobotsTTL time.Duration
	// MaxRetries is how many times a fetch that failed with a retryable error
	// (network error, 5xx, 429) is retried; zero means never. A 4xx, a TLS
	// certificate that fails verification and a robots.txt refusal are never
	// retried. Default 3.
	MaxRetries int
	// RetryInitialInterval is the first backoff interval; later ones grow
	// exponentially, with jitter. Default 200ms.
	RetryInitialInterval time.Duration
	// RetryMaxInterval caps one backoff interval. Default 5s.
	RetryMaxInterval time.Duration
	// RetryMaxElapsed gives up retrying one fetch after this long. It must be
	// positive (backoff's own default of 15 minutes is never used). Default
	// 30s.
	RetryMaxElapsed time.Duration

	// HTTP configures the HTTPFetcher a Crawler creates; nil means
	// DefaultHTTPConfig(). Its zero fields take their defaults, except that
	// an empty UserAgent becomes this Config's UserAgent. PoliteFetcher
	// ignores it.
	HTTP *HTTPConfig
	// Strategy is how a Crawler walks the link graph; nil means
	// ConcurrentChannel. PoliteFetcher ignores it.
	Strategy Strategy
	// MaxPages bounds the pages a Crawler fetches; zero means no limit.
	// Default 10000. PoliteFetcher ignores it.
	MaxPages int
	// MaxDepth bounds how many links away from the start URL a Crawler goes;
	// zero means no limit. Default 0. PoliteFetcher ignores it.
	MaxDepth int
	// Parallelism bounds a Crawler's fetches in flight over all hosts; zero
	// means no limit beyond MaxInFlightPerHost. Default 16. PoliteFetcher
	// ignores it.
	Parallelism int
}

// DefaultConfig returns the default configuration; see the field comments.
func DefaultConfig() *Config {
	return &Config{
		UserAgent:            DefaultUserAgent,
		MaxInFlightPerHost:   8,
		MaxCrawlDelay:        10 * time.Second,
		MaxRetries:           3,
		RetryInitialInterval: 200 * time.Millisecond,
		RetryMaxInterval:     5 * time.Second,
		RetryMaxElapsed:      30 * time.Second,
		MaxPages:             10000,
		Parallelism:          16,
	}
}

func (c *Config) validate() error {
	switch {
	case c.UserAgent == "":
		return errors.New("crawler: Config.UserAgent is empty")
	case c.MaxInFlightPerHost < 1:
		return fmt.Errorf("crawler: Config.MaxInFlightPerHost %d must be at least 1", c.MaxInFlightPerHost)
	case c.Delay < 0:
		return fmt.Errorf("crawler: Config.Delay %v is negative", c.Delay)
	case c.MaxCrawlDelay < 0:
		return fmt.Errorf("crawler: Config.MaxCrawlDelay %v is negative", c.MaxCrawlDelay)
	case c.RobotsTTL < 0:
		return fmt.Errorf("crawler: Config.RobotsTTL %v is negative", c.RobotsTTL)
	case c.MaxRetries < 0:
		return fmt.Errorf("crawler: Config.MaxRetries %d is negative", c.MaxRetries)
	case c.RetryInitialInterval <= 0 || c.RetryMaxInterval < c.RetryInitialInterval:
		return fmt.Errorf("crawler: Config retry intervals %v..%v: need 0 < initial <= max",
			c.RetryInitialInterval, c.RetryMaxInterval)
	case c.RetryMaxElapsed <= 0:
		return fmt.Errorf("crawler: Config.RetryMaxElapsed %v must be positive", c.RetryMaxElapsed)
	case c.MaxPages < 0 || c.MaxDepth < 0 || c.Parallelism < 0:
		return fmt.Errorf("crawler: Config limits must not be negative (MaxPages %d, MaxDepth %d, Parallelism %d)",
			c.MaxPages, c.MaxDepth, c.Parallelism)
	}
	for _, h := range c.AllowedHosts {
		if _, err := HostKey(h); err != nil {
			return fmt.Errorf("crawler: Config.AllowedHosts: %q: %w", h, err)
		}
	}
	if c.HTTP != nil && (c.HTTP.Timeout < 0 || c.HTTP.MaxBodyBytes < 0) {
		return fmt.Errorf("crawler: Config.HTTP: negative Timeout %v or MaxBodyBytes %d",
			c.HTTP.Timeout, c.HTTP.MaxBodyBytes)
	}
	return nil
}

// withDefaults returns a validated copy of c, or DefaultConfig() if c is nil.
func (c *Config) withDefaults() (Config, error) {
	if c == nil {
		return *DefaultConfig(), nil
	}
	cp := *c
	cp.AllowedHosts = slices.Clone(c.AllowedHosts)
	return cp, cp.validate()
}

// capDelay caps a wait that a server asks for (Crawl-delay, Retry-After)
// at MaxCrawlDelay, unless that is zero (no cap).
func (c *Config) capDelay(d time.Duration) time.Duration {
	if c.MaxCrawlDelay > 0 && d > c.MaxCrawlDelay {
		return c.MaxCrawlDelay
	}
	return d
}

func (c *Config) robotsTTL() time.Duration {
	if c.RobotsTTL == 0 {
		return DefaultRobotsTTL
	}
	return c.RobotsTTL
}
