package labgob_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/semrpc/semrpc/labrpc/labgob"
)

// FuzzEntry is a Raft-like log entry with an interface-typed command.
type FuzzEntry struct {
	Term    int
	Command interface{}
}

// FuzzState is what a Raft server persists.
type FuzzState struct {
	CurrentTerm int
	VotedFor    int
	Log         []FuzzEntry
	Snapshot    []byte
}

type FuzzOp struct {
	Key, Value string
	ClientId   int64
}

func init() {
	labgob.Register(FuzzOp{})
}

func encodeState(tb testing.TB, s FuzzState) []byte {
	var buf bytes.Buffer
	if err := labgob.NewEncoder(&buf).Encode(s); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzDecode feeds arbitrary bytes to a labgob decoder, as a persister's
// corrupt state would: no panic, and whatever decodes must re-encode.
func FuzzDecode(f *testing.F) {
	f.Add(encodeState(f, FuzzState{CurrentTerm: 3, VotedFor: 1, Log: []FuzzEntry{{Term: 1, Command: FuzzOp{"k", "v", 7}}}}))
	f.Add(encodeState(f, FuzzState{Log: []FuzzEntry{{Term: 2, Command: 5}, {Term: 2, Command: "x"}}, Snapshot: []byte{1, 2, 3}}))
	f.Add([]byte{})
	f.Add([]byte{0x03, 0xff, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s FuzzState
		if err := labgob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
			return
		}
		var again FuzzState
		if err := labgob.NewDecoder(bytes.NewReader(encodeState(t, s))).Decode(&again); err != nil {
			t.Fatalf("a decoded state does not survive re-encoding: %v", err)
		}
		if !reflect.DeepEqual(normalize(s), normalize(again)) {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", s, again)
		}
	})
}

// normalize maps nil and empty slices together, as gob does.
func normalize(s FuzzState) FuzzState {
	if len(s.Log) == 0 {
		s.Log = nil
	}
	if len(s.Snapshot) == 0 {
		s.Snapshot = nil
	}
	return s
}
