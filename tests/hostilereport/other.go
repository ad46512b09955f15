//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hostilereport: the attacks use Linux system calls and /proc; run it on Linux")
	os.Exit(1)
}
