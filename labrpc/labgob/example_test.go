package labgob_test

import (
	"bytes"
	"fmt"

	"github.com/semrpc/semrpc/labrpc/labgob"
)

type LogEntry struct {
	Term    int
	Command interface{}
}

// Persisting Raft state: encode, then decode into fresh variables.
func Example() {
	labgob.Register(LogEntry{})
	var buf bytes.Buffer
	enc := labgob.NewEncoder(&buf)
	_ = enc.Encode(7) // current term
	_ = enc.Encode([]LogEntry{{Term: 7, Command: "put x 1"}})

	dec := labgob.NewDecoder(&buf)
	var term int
	var log []LogEntry
	if dec.Decode(&term) != nil || dec.Decode(&log) != nil {
		fmt.Println("decode failed")
		return
	}
	fmt.Println(term, log[0].Term, log[0].Command)
	// Output: 7 7 put x 1
}
