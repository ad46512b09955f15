package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// printWarnings prints the warnings the tests appended to path (see
// labtest.EnvWarnings), after go test's own output: go test shows a
// passing package's output only with -v, and a bug that did not fail the
// test must still be seen. Each is printed once: goroutines of a warning
// that differ only in their ids are counted on one line ("7 × sleeps in
// ..."), and a warning that runs of -repeat (or reruns) give again, at the
// same places, is printed once with the number of runs that gave it (and
// the most goroutines one of them had at each place).
func printWarnings(path string, w io.Writer) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return
	}
	var order []string
	groups := map[string]*warning{}
	for _, entry := range splitWarnings(string(data)) {
		e := parseWarning(entry)
		key := e.key()
		g, ok := groups[key]
		if !ok {
			order = append(order, key)
			groups[key] = e
			continue
		}
		g.runs++
		for i := range g.places {
			if e.places[i].count != g.places[i].count {
				g.places[i].differs = true
			}
			g.places[i].count = max(g.places[i].count, e.places[i].count)
		}
	}
	for _, key := range order {
		g := groups[key]
		fmt.Fprintln(w, g.header)
		for _, p := range g.places {
			switch {
			case p.count == 1 && !p.differs:
				fmt.Fprintln(w, p.first)
			case p.differs:
				fmt.Fprintf(w, "\tup to %d × %s\n", p.count, p.place)
			default:
				fmt.Fprintf(w, "\t%d × %s\n", p.count, p.place)
			}
		}
		if g.runs > 1 {
			fmt.Fprintf(w, "\t(the same in %d runs)\n", g.runs)
		}
	}
}

// warning is one entry of the warnings file: its first line, and its
// goroutines' lines grouped by what they do where.
type warning struct {
	header string
	places []place
	runs   int
}

type place struct {
	place   string // the line without its tab and "goroutine N "
	first   string // the first line found there, as written
	count   int
	differs bool // runs had different counts there
}

func (e *warning) key() string {
	k := e.header
	for _, p := range e.places {
		k += "\n" + p.place
	}
	return k
}

var goroutineID = regexp.MustCompile(`^\tgoroutine \d+ `)

func parseWarning(entry string) *warning {
	lines := strings.Split(entry, "\n")
	e := &warning{header: lines[0], runs: 1}
	at := map[string]int{}
	for _, l := range lines[1:] {
		k := strings.TrimPrefix(goroutineID.ReplaceAllString(l, "\t"), "\t")
		if i, ok := at[k]; ok {
			e.places[i].count++
			continue
		}
		at[k] = len(e.places)
		e.places = append(e.places, place{place: k, first: l, count: 1})
	}
	return e
}

// splitWarnings splits the warnings file into entries: a line that does
// not start with a tab begins one.
func splitWarnings(data string) []string {
	var entries []string
	for _, line := range strings.Split(strings.TrimRight(data, "\n"), "\n") {
		if strings.HasPrefix(line, "\t") && len(entries) > 0 {
			entries[len(entries)-1] += "\n" + line
			continue
		}
		entries = append(entries, line)
	}
	return entries
}
