package crawler

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkConcurrent crawls a local Site whose pages each take 20ms to
// answer, with politeness off (no robots.txt, no delay, per-host limit equal
// to the parallelism). It reports pages/s and the fraction of the ideal rate,
// parallelism / latency, that the strategy reached.
func BenchmarkConcurrent(b *testing.B) {
	const (
		pages       = 300
		latency     = 20 * time.Millisecond
		parallelism = 16
	)
	for _, st := range strategies[1:] {
		b.Run(st.name, func(b *testing.B) {
			site := NewSite(pages, 1)
			site.Latency = latency
			srv := httptest.NewServer(site)
			defer srv.Close()
			hf, err := NewHTTPFetcher(nil)
			if err != nil {
				b.Fatal(err)
			}
			defer hf.Close()
			cfg := DefaultConfig()
			cfg.IgnoreRobots = true
			cfg.MaxInFlightPerHost = parallelism
			cfg.RetryInitialInterval = time.Millisecond
			fetched := 0
			var elapsed time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				site.Reset()
				pf, err := Polite(hf, cfg)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				res, err := st.run(context.Background(), srv.URL+"/", pf, WithParallelism(parallelism))
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				fetched += res.Fetches
			}
			rate := float64(fetched) / elapsed.Seconds()
			ideal := float64(parallelism) / latency.Seconds()
			b.ReportMetric(rate, "pages/s")
			b.ReportMetric(rate/ideal, "ideal-fraction")
		})
	}
}
