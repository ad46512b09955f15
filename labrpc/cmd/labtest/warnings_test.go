package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestPrintWarningsOncePerBugWithCounts(t *testing.T) {
	head := "labtest: warning: TestManyElections3A sleeps or waits on a channel while holding a lock (never sleep or wait holding a lock: every goroutine that needs it waits too):"
	tick := " sleeps in 6.5840/raft1.(*Raft).ticker (/l/raft1/raft.go:810) holding rf.mu, locked at raft.go:809 in 6.5840/raft1.(*Raft).ticker"
	other := "labtest: warning: TestReElection3A sleeps or waits on a channel while holding a lock (never sleep or wait holding a lock: every goroutine that needs it waits too):"
	data := head + "\n\tgoroutine 144" + tick + "\n\tgoroutine 146" + tick + "\n\tgoroutine 148" + tick + "\n" +
		other + "\n\tgoroutine 9" + tick + "\n" +
		head + "\n\tgoroutine 201" + tick + "\n\tgoroutine 203" + tick + "\n"
	path := filepath.Join(t.TempDir(), "warnings")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printWarnings(path, &out)
	want := head + "\n\tup to 3 ×" + tick + "\n\t(the same in 2 runs)\n" +
		other + "\n\tgoroutine 9" + tick + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
}
