package labrpc

import (
	"encoding/gob"
	"fmt"
	"reflect"
	"testing"
)

// A Raft log entry holds its command in an interface; a KV service puts a
// struct there.
type bytesOp struct {
	Key, Value string
	ClientID   int64
}

type bytesEntry struct {
	Term    int
	Command interface{}
}

type BytesAppendArgs struct {
	Term    int
	Entries []bytesEntry
}

type BytesAppendReply struct {
	Term    int
	Success bool
}

type BytesRaft struct{}

func (r *BytesRaft) AppendEntries(args *BytesAppendArgs, reply *BytesAppendReply) {
	reply.Term, reply.Success = args.Term, true
}

func init() { gob.Register(bytesOp{}) }

// The classic network encodes every message with a fresh encoder, so each
// message carries the definitions of the concrete types in its interfaces;
// GetTotalBytes must count them every time, not only the first.
func TestBytesCountTypeInformationPerMessage(t *testing.T) {
	tests := []struct {
		name    string
		command interface{}
	}{
		{"int commands", 5},
		{"struct commands", bytesOp{Key: "k", Value: "v", ClientID: 9}},
		{"no entries", nil},
	}
	for _, tt := range tests {
		subtest(t, tt.name, func(t *testing.T) {
			net := MakeNetworkSeed(1)
			defer net.Cleanup()
			srv := MakeServer()
			srv.AddService(MakeService(&BytesRaft{}))
			net.AddServer("s", srv)
			e := net.MakeEnd("e")
			net.Connect("e", "s")
			net.Enable("e", true)
			for round := 0; round < 3; round++ {
				args := &BytesAppendArgs{Term: 3}
				if tt.command != nil {
					args.Entries = []bytesEntry{{1, tt.command}, {2, tt.command}}
				}
				var reply BytesAppendReply
				before := net.GetTotalBytes()
				if !e.Call("BytesRaft.AppendEntries", args, &reply) || !reply.Success {
					t.Fatal("call failed")
				}
				want := gobSize(t, args) + gobSize(t, reply)
				if got := net.GetTotalBytes() - before; got != want {
					t.Errorf("round %d: %d bytes counted, want %d (fresh encoders)", round, got, want)
				}
			}
		})
	}
}

func TestHoldsInterface(t *testing.T) {
	type inner struct{ X interface{} }
	type hidden struct {
		//lint:ignore U1000 the unexported field is what the walk must skip
		x interface{}
	}
	type rec struct {
		Next *rec
		N    int
	}
	tests := []struct {
		v    any
		want bool
	}{
		{0, false},
		{BytesAppendReply{}, false},
		{BytesAppendArgs{}, true},
		{[]inner{}, true},
		{map[string]interface{}{}, true},
		{hidden{}, false}, // gob skips the field
		{rec{}, false},
	}
	for _, tt := range tests {
		typ := fmt.Sprintf("%T", tt.v)
		if got := holdsInterface(reflect.TypeOf(tt.v), map[reflect.Type]bool{}); got != tt.want {
			t.Errorf("%s: %v, want %v", typ, got, tt.want)
		}
	}
}
