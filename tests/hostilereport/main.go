//go:build linux

// Command hostilereport runs semrpc's hostile-input attacks (package
// tests/hostile) against a default server, one attack at a time, each in
// a process of its own, and prints one markdown table: what each attack
// sent, what it made the server hold and allocate, what it did to the
// legitimate calls made meanwhile on other connections, and whether the
// server met the attack's goal (make hostile).
//
// Usage:
//
//	go run ./tests/hostilereport [-full] [-only regexp]
//
// -full runs the attacks at the sizes of issue 19 (maps declaring 10⁷ and
// 10⁸ entries, 100 connections everywhere, 65,536 sessions), which take a
// few minutes and several GiB; the default sizes are those of go test.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"time"

	"github.com/semrpc/semrpc/tests/hostile"
)

func main() {
	if hostile.IsChild() {
		os.Exit(hostile.ChildMain())
	}
	full := flag.Bool("full", false, "run the attacks at full size (the issue's figures)")
	only := flag.String("only", "", "run only the attacks whose name matches this regular expression")
	flag.Parse()
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostilereport: -only:", err)
		os.Exit(2)
	}
	if *full {
		os.Setenv(hostile.FullEnv, "1")
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostilereport:", err)
		os.Exit(1)
	}
	scale := "default sizes"
	if *full {
		scale = "full sizes"
	}
	fmt.Printf("semrpc hostile-input report — %s, %s/%s, GOMAXPROCS=%d, %s, %s\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02"), scale)
	var results []*hostile.Result
	for _, name := range hostile.AttackNames(*full) {
		if !re.MatchString(name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "%s… ", name)
		r := hostile.RunIsolated(context.Background(), exe, nil, name)
		fmt.Fprintf(os.Stderr, "%v\n", r.Elapsed)
		results = append(results, r)
	}
	hostile.Report(os.Stdout, results)
}
