package crawler

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A 503 (or 429) with Retry-After is retried no sooner than the server
// asked, capped at MaxCrawlDelay; without the header, at the backoff's pace.
func TestPoliteHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		maxDelay   time.Duration
		minGap     time.Duration
	}{
		{"503 asks for 1s", http.StatusServiceUnavailable, "1", 10 * time.Second, 900 * time.Millisecond},
		{"429 asks for 1s", http.StatusTooManyRequests, "1", 10 * time.Second, 900 * time.Millisecond},
		{"capped by MaxCrawlDelay", http.StatusServiceUnavailable, "3600", 300 * time.Millisecond, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var hits []time.Time
			mux := http.NewServeMux()
			mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits = append(hits, time.Now())
				first := len(hits) == 1
				mu.Unlock()
				if first {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(tt.status)
					return
				}
				w.Header().Set("Content-Type", "text/html")
				w.Write([]byte(`<a href="/x">x</a>`))
			})
			srv := startSite(t, mux)
			cfg := fastRetries()
			cfg.MaxCrawlDelay = tt.maxDelay
			p := newPolite(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := p.Fetch(ctx, srv.URL+"/"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(hits) != 2 {
				t.Fatalf("%d requests, want 2", len(hits))
			}
			if gap := hits[1].Sub(hits[0]); gap < tt.minGap {
				t.Errorf("retried after %v; the server asked for %ss (cap %v)", gap, tt.retryAfter, tt.maxDelay)
			}
		})
	}
}
