package bench

import (
	"os"
	"strings"
	"testing"
)

// TestMain stops the PostgreSQL server the benchmarks may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	StopPostgres()
	os.Exit(code)
}

// BenchmarkReport runs every case of the report under go test -bench, for
// benchstat and profiling; make bench prints the same cases as one table.
func BenchmarkReport(b *testing.B) {
	for _, g := range Groups() {
		b.Run(strings.ReplaceAll(g.Name, " ", "_"), func(b *testing.B) {
			for _, c := range g.Cases {
				b.Run(strings.ReplaceAll(c.Name, " ", "_"), c.Run)
			}
		})
	}
}
