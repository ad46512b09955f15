//go:build linux

package hostile

import (
	"cmp"
	"context"
	"flag"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(ChildMain())
	}
	// The attacks run in processes of their own, mostly waiting on the
	// server's timeouts: more of them at once than there are cores.
	flag.Parse()
	if !flagSet("test.parallel") {
		flag.Set("test.parallel", "4")
	}
	goleak.VerifyTestMain(m)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// TestAttacks runs every attack against a default server, each in a
// process of its own, and holds the server to the attack's goal. With -v
// it ends with the report's table.
func TestAttacks(t *testing.T) {
	var (
		mu      sync.Mutex
		results = map[string]*Result{}
	)
	names := AttackNames(currentScale().full)
	t.Cleanup(func() {
		var rs []*Result
		for _, n := range names {
			if r := results[n]; r != nil {
				rs = append(rs, r)
			}
		}
		var b strings.Builder
		Report(&b, rs)
		t.Logf("\n%s", b.String())
	})
	// The attacks that wait for the server's timeouts start first, so that
	// the others run meanwhile.
	waitFirst := slices.Clone(names)
	slices.SortStableFunc(waitFirst, func(a, b string) int {
		return cmp.Compare(attackNamed(b).closeWait, attackNamed(a).closeWait)
	})
	for _, name := range waitFirst {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := RunIsolated(context.Background(), os.Args[0], nil, name)
			mu.Lock()
			results[name] = r
			mu.Unlock()
			if r.Err != "" {
				t.Fatalf("the attack could not run: %s", r.Err)
			}
			for _, f := range r.Facts {
				t.Log(f)
			}
			t.Logf("sent %s; held %s (heap in use %s); allocated %s; peak RSS %s; goroutines %+d; fds %+d; legitimate calls: %s",
				size(r.BytesSent), size(r.Held), size(r.HeapInuse), size(r.Allocated), size(r.PeakRSS), r.Goroutines, r.FDs, legitEffect(r))
			for _, m := range r.Missed {
				t.Errorf("goal missed: %s", m)
			}
		})
	}
}
