package main

import (
	"fmt"
	"io"
	"os"
)

// printWarnings prints the warnings the tests appended to path (see
// labtest.EnvWarnings), after go test's own output: go test shows a
// passing package's output only with -v, and a bug that did not fail the
// test must still be seen.
func printWarnings(path string, w io.Writer) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return
	}
	fmt.Fprintf(w, "%s", data)
}
