// Command benchreport runs semrpc's benchmarks beside plain net/rpc in one
// process and prints one table (make bench). Each comparison is run in
// alternating rounds, and the median of the rounds is reported, so that a
// burst of noise on a shared machine does not favour either side.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/semrpc/semrpc/tests/bench"
)

type row struct {
	group, name string
	nsPerOp     float64
	allocs      int64
	metrics     map[string]float64 // extra ReportMetric values
	ratio       float64            // throughput relative to the group's baseline; 0 = none
}

func main() {
	testing.Init()
	rounds := flag.Int("rounds", 3, "alternating rounds per comparison (the median is reported)")
	flag.Parse()
	if err := run(os.Stdout, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, rounds int) error {
	fmt.Fprintf(w, "semrpc benchmarks — %s, %s/%s, GOMAXPROCS=%d, %s, median of %d rounds\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0),
		time.Now().UTC().Format("2006-01-02"), rounds)
	var rows []row
	for _, g := range bench.Groups() {
		rows = append(rows, measure(g, rounds)...)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group\tbenchmark\tcalls/s\tµs/call\tallocs/call\tvs baseline\textra\t")
	for _, r := range rows {
		ratio := ""
		if r.ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.ratio)
		}
		extra := ""
		keys := make([]string, 0, len(r.metrics))
		for k := range r.metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			extra += fmt.Sprintf("%.4g %s ", r.metrics[k], k)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%d\t%s\t%s\t\n",
			r.group, r.name, 1e9/r.nsPerOp, r.nsPerOp/1e3, r.allocs, ratio, extra)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return lossTable(w)
}

// lossTable prints what at-least-once calls with default options do on a
// link that kills connections: completion, and the load the retry budget
// lets through (attempts, connections and executions per call).
func lossTable(w io.Writer) error {
	fmt.Fprintf(w, "\nAtLeastOnce, default options, through a proxy killing the connection under a fraction of requests (3 s each):\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "loss\tcallers\tcalls\tcompleted\tattempts/call\tconnections/call\truns/call\tbudget refusals\t")
	for _, callers := range []int{1, 64} {
		for _, loss := range []float64{0, 0.1, 0.2, 0.5, 1} {
			r, err := bench.Loss(loss, callers, 0, 3*time.Second, 5*time.Second, 1)
			if err != nil {
				return err
			}
			n := float64(r.Calls)
			fmt.Fprintf(tw, "%.0f%%\t%d\t%d\t%.2f%%\t%.2f\t%.3f\t%.2f\t%d\t\n", loss*100, callers, r.Calls,
				100*float64(r.Completed)/n, float64(r.Attempts)/n, float64(r.Conns)/n, float64(r.Runs)/n, r.Budget)
		}
	}
	return tw.Flush()
}

// measure runs every case of g in alternating rounds and reports medians.
// A first round warms the process up (the first benchmark of a process
// runs measurably slower, whichever it is) and is not counted; a GC
// between cases keeps one case's garbage out of the next one's time.
func measure(g bench.Group, rounds int) []row {
	results := make([][]testing.BenchmarkResult, len(g.Cases))
	for r := -1; r < rounds; r++ {
		for i, c := range g.Cases {
			runtime.GC()
			res := testing.Benchmark(c.Run)
			if r >= 0 {
				results[i] = append(results[i], res)
			}
		}
	}
	rows := make([]row, len(g.Cases))
	for i, c := range g.Cases {
		res := results[i]
		sort.Slice(res, func(a, b int) bool { return res[a].NsPerOp() < res[b].NsPerOp() })
		med := res[len(res)/2]
		ns := float64(med.T.Nanoseconds()) / float64(med.N)
		rows[i] = row{group: g.Name, name: c.Name, nsPerOp: ns, allocs: med.AllocsPerOp(), metrics: med.Extra}
	}
	if g.Baseline >= 0 {
		base := rows[g.Baseline].nsPerOp
		for i := range rows {
			rows[i].ratio = base / rows[i].nsPerOp
		}
	}
	return rows
}
