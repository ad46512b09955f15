package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(runAsCrawlEnv) == "1" {
		// A multi-process test started this binary as the crawl program.
		os.Args = append([]string{"crawl"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
