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
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
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
	only := flag.String("only", "", "run only the groups whose name matches this regular expression")
	sections := flag.Bool("all", true, "also run labrpc's comparison and the connection-loss table (-all=false skips them)")
	flag.Parse()
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport: -only:", err)
		os.Exit(2)
	}
	err = run(os.Stdout, *rounds, re, *sections)
	bench.StopPostgres() // if a case started one
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, rounds int, only *regexp.Regexp, sections bool) error {
	fmt.Fprintf(w, "semrpc benchmarks — %s, %s/%s, GOMAXPROCS=%d, %s, median of %d rounds\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0),
		time.Now().UTC().Format("2006-01-02"), rounds)
	var rows []row
	for _, g := range bench.Groups() {
		if !only.MatchString(g.Name) {
			continue
		}
		rows = append(rows, measure(g, rounds)...)
	}
	if err := printRows(w, rows); err != nil {
		return err
	}
	if !sections {
		printGoals(w, rows, nil)
		return nil
	}
	lab := labrpcRatios(w)
	printGoals(w, rows, lab)
	return lossTable(w)
}

// printRows prints the measured rows as one table.
func printRows(w io.Writer, rows []row) error {
	if len(rows) == 0 {
		return nil
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
	return tw.Flush()
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
// between cases keeps one case's garbage out of the next one's time. Each
// round starts one case further on, so that no case always runs in the
// same place of the round (right after the same neighbour, or at the same
// moment of a periodic load).
func measure(g bench.Group, rounds int) []row {
	results := make([][]testing.BenchmarkResult, len(g.Cases))
	for r := -1; r < rounds; r++ {
		for k := range g.Cases {
			i := (k + max(r, 0)) % len(g.Cases)
			c := g.Cases[i]
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

// A goal from an issue: the case's throughput against its group's
// baseline (net/rpc, or for PostgreSQL the hand-written idempotency-key
// loop), or with callsPerSec its calls/s, must reach min.
type goal struct {
	issue       int
	group, name string
	min         float64
	callsPerSec bool // min is calls/s, not a ratio
}

var goals = []goal{
	{20, bench.GroupSequential, bench.CaseNoRetry, 1.5, false},
	{20, bench.GroupSequential, bench.CaseAtLeastOnce, 1.5, false},
	{20, bench.GroupSequential, bench.CaseAtMostOnce, 1.5, false},
	{20, bench.GroupOneClient, bench.CaseNoRetry, 1.9, false},
	{20, bench.GroupOneClient, bench.CaseAtLeastOnce, 1.9, false},
	{20, bench.GroupOneClient, bench.CaseAtMostOnce, 1.9, false},
	{13, bench.GroupManyClients, bench.CaseNoRetry, 1.5, false},
	{13, bench.GroupManyClients, bench.CaseAtLeastOnce, 1.5, false},
	{13, bench.GroupManyClients, bench.CaseAtMostOnce, 1.4, false},
	{13, bench.GroupOneClient, bench.CaseExactlyOnce, 40000, true},
	// Within 1.3x of the hand-written loop's time per call.
	{21, bench.GroupPgSequential, bench.CasePgStore, 1 / 1.3, false},
	{21, bench.GroupPgCallers, bench.CasePgStore, 1 / 1.3, false},
}

// labGoals are issue 22's: labrpc against the classic design, by callers.
var labGoals = map[string]float64{"1 caller(s)": 12, "32 caller(s)": 8}

// printGoals prints each goal beside what this run measured, and where the
// floors put the best any RPC stack could do.
func printGoals(w io.Writer, rows []row, lab []labRatio) {
	find := func(group, name string) (row, bool) {
		for _, r := range rows {
			if r.group == group && r.name == name {
				return r, true
			}
		}
		return row{}, false
	}
	measured := len(lab) > 0
	for _, g := range goals {
		if _, ok := find(g.group, g.name); ok {
			measured = true
		}
	}
	if !measured {
		return
	}
	fmt.Fprintf(w, "\nGoals, this run:\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "issue\tgroup\tbenchmark\tgoal\tmeasured\t\t")
	for _, g := range goals {
		r, ok := find(g.group, g.name)
		if !ok {
			continue
		}
		want, got, v := fmt.Sprintf("≥ %.2f× baseline", g.min), fmt.Sprintf("%.2f×", r.ratio), r.ratio
		if g.callsPerSec {
			v = 1e9 / r.nsPerOp
			want, got = fmt.Sprintf("≥ %.0f calls/s", g.min), fmt.Sprintf("%.0f calls/s", v)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t\n", g.issue, g.group, g.name, want, got, verdict(v >= g.min))
	}
	if eo, ok := find(bench.GroupSequential, bench.CaseExactlyOnce); ok {
		if fs, ok := find(bench.GroupSequential, bench.CaseFsync); ok {
			fmt.Fprintf(tw, "13\t%s\t%s\t%s\t%.2f fdatasyncs/call\t\t\n", bench.GroupSequential, bench.CaseExactlyOnce,
				"at the fsync limit", eo.nsPerOp/fs.nsPerOp)
		}
	}
	for _, l := range lab {
		min := labGoals[l.callers]
		fmt.Fprintf(tw, "22\tlabrpc, %s\tlabrpc vs classic design\t≥ %.2f×\t%.2f×\t%s\t\n", l.callers, min, l.ratio, verdict(l.ratio >= min))
	}
	tw.Flush()
	if pp, ok := find(bench.GroupSequential, bench.CasePingPong); ok {
		if n, ok := find(bench.GroupSequential, bench.CaseNetRPC); ok {
			fmt.Fprintf(w, "\nThe floor: a raw 64-byte loopback ping-pong makes %.0f round trips/s, %.2f× net/rpc's sequential calls.\n",
				1e9/pp.nsPerOp, n.nsPerOp/pp.nsPerOp)
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

// labRatio is labrpc's throughput against the classic design's.
type labRatio struct {
	callers string
	ratio   float64
}

// labrpcRatios runs labrpc's own comparison with the classic lab network's
// design (go test -bench 'ClassicStyle|Labrpc' ./labrpc: the classic design
// is re-implemented in that package's tests, so it runs there), alternating
// the two over the rounds like the rest of the report, and prints the
// medians. It needs the go command and the module's source; without them
// it says so and returns nothing.
func labrpcRatios(w io.Writer) []labRatio {
	fmt.Fprintf(w, "\nlabrpc against the classic design (go test -bench 'ClassicStyle|Labrpc' ./labrpc, %d alternating runs, medians):\n\n", labRuns)
	perCase := map[string][]float64{} // "ClassicStyle/callers=1" -> calls/s of each run
	for i := 0; i < labRuns; i++ {
		for _, which := range []string{"ClassicStyle", "Labrpc"} {
			out, err := exec.Command("go", "test", "-run", "^$", "-bench", "^Benchmark"+which+"$", "-benchtime", "1s", "./labrpc").CombinedOutput()
			if err != nil {
				fmt.Fprintf(w, "skipped: %v\n%s\n", err, out)
				return nil
			}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark"+which+"/") {
					continue
				}
				name := strings.TrimPrefix(f[0], "Benchmark")
				if k := strings.LastIndex(name, "-"); k > 0 {
					name = name[:k]
				}
				for j := 1; j+1 < len(f); j++ {
					if f[j+1] == "calls/s" {
						if v, err := strconv.ParseFloat(f[j], 64); err == nil {
							perCase[name] = append(perCase[name], v)
						}
					}
				}
			}
		}
	}
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	var res []labRatio
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "callers\tclassic calls/s\tlabrpc calls/s\tratio\t")
	for _, callers := range []string{"1", "32"} {
		c := median(perCase["ClassicStyle/callers="+callers])
		l := median(perCase["Labrpc/callers="+callers])
		if c == 0 || l == 0 {
			continue
		}
		res = append(res, labRatio{callers + " caller(s)", l / c})
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f×\t\n", callers, c, l, l/c)
	}
	tw.Flush()
	return res
}

// labRuns is how many times each labrpc benchmark runs.
const labRuns = 3
