//go:build linux

package hostile

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report prints one markdown table row per result (attack, bytes sent,
// memory held after GC, heap allocated, peak resident memory, goroutines
// and descriptors added, what happened to the legitimate calls, and
// whether the goal was met), then what each attack observed.
func Report(w io.Writer, results []*Result) {
	fmt.Fprintln(w, "| attack | bytes sent | memory held (after GC) | allocated | peak RSS | goroutines / fds | closed by server | effect on legitimate calls | goal |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|---|---|---|")
	for _, r := range results {
		if r.Crashed || r.Err != "" {
			what := "**crashed**: " + r.Crash
			if !r.Crashed {
				what = "not run: " + r.Err
			}
			fmt.Fprintf(w, "| %s | | | | | | | %s | missed |\n", r.Attack, cell(what))
			continue
		}
		fds := fmt.Sprintf("%+d", r.FDs)
		if r.NoFDs {
			fds = "?"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %+d / %s | %s | %s | %s |\n",
			r.Attack, size(r.BytesSent), size(r.Held), size(r.Allocated), size(r.PeakRSS),
			r.Goroutines, fds, closedCell(r), cell(legitEffect(r)), goalCell(r))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "- **%s** (%v): %s\n", r.Attack, r.Elapsed, r.Goal)
		for _, f := range r.Facts {
			fmt.Fprintf(w, "  - %s\n", f)
		}
		for _, m := range r.Missed {
			fmt.Fprintf(w, "  - MISSED: %s\n", m)
		}
	}
}

func closedCell(r *Result) string {
	if r.Conns == 0 {
		return ""
	}
	switch {
	case r.CloseAfter >= 0:
		return fmt.Sprintf("all %d, after %v", r.Conns, r.CloseAfter.Round(10*time.Millisecond))
	case r.CloseWait > 0:
		return fmt.Sprintf("%d of %d in %v", r.ClosedByServer, r.Conns, r.CloseWait)
	}
	return fmt.Sprintf("%d of %d", r.ClosedByServer, r.Conns)
}

// legitEffect says what the attack did to the legitimate calls.
func legitEffect(r *Result) string {
	d, a := r.During, r.After
	if d.Failed == 0 && a.Failed == 0 {
		return fmt.Sprintf("none failed (%d during, slowest %v; %d after)", d.OK, d.Slowest.Round(time.Millisecond), a.OK)
	}
	var parts []string
	if d.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d failed during", d.Failed, d.OK+d.Failed))
	}
	if a.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d failed after", a.Failed, a.OK+a.Failed))
	}
	first := d.FirstError
	if first == "" {
		first = a.FirstError
	}
	return strings.Join(parts, ", ") + ": " + short(first)
}

func goalCell(r *Result) string {
	if len(r.Missed) == 0 {
		return "met"
	}
	return "missed: " + cell(strings.Join(r.Missed, "; "))
}

// cell makes s fit in a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
