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
// ..."), and a warning repeated by runs of -repeat (or reruns) is printed
// once, with the number of runs that gave it.
func printWarnings(path string, w io.Writer) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return
	}
	var order []string
	runs := map[string]int{}
	for _, entry := range splitWarnings(string(data)) {
		e := collapseGoroutines(entry)
		if runs[e] == 0 {
			order = append(order, e)
		}
		runs[e]++
	}
	for _, e := range order {
		fmt.Fprintln(w, e)
		if runs[e] > 1 {
			fmt.Fprintf(w, "\t(the same in %d runs)\n", runs[e])
		}
	}
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

var goroutineID = regexp.MustCompile(`^\tgoroutine \d+ `)

// collapseGoroutines counts the lines of an entry that name goroutines
// doing the same thing at the same place, in the order first seen; a line
// seen once keeps its goroutine's id.
func collapseGoroutines(entry string) string {
	lines := strings.Split(entry, "\n")
	var order []string
	count := map[string]int{}
	first := map[string]string{}
	for _, l := range lines[1:] {
		k := l
		if goroutineID.MatchString(l) {
			k = "\t" + goroutineID.ReplaceAllString(l, "")
		}
		if count[k] == 0 {
			order = append(order, k)
			first[k] = l
		}
		count[k]++
	}
	out := []string{lines[0]}
	for _, k := range order {
		if count[k] == 1 {
			out = append(out, first[k])
			continue
		}
		out = append(out, fmt.Sprintf("\t%d × %s", count[k], strings.TrimPrefix(k, "\t")))
	}
	return strings.Join(out, "\n")
}
