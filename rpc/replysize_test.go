package rpc

import (
	"errors"
	"fmt"
	"testing"
)

type sizePair struct{ A, B int64 }

type sizeNode struct {
	Name string
	Next *sizeNode
}

type sizeHidden struct {
	m   map[string]*int
	s   []string
	err error
}

type sizeTree struct {
	Tags  map[string]string
	Kids  []*sizeTree
	Extra any
	Fixed [4]int32
}

func TestReplySize(t *testing.T) {
	n := 7
	s := "hello"
	bs := make([]byte, 1000, 1024)
	pair := &sizePair{1, 2}
	ring := &sizeNode{Name: "a"}
	ring.Next = &sizeNode{Name: "bb", Next: ring} // a cycle: each node counts once
	shared := &sizePair{}
	const nodeSize, pairSize, sliceHeader, stringHeader = 24, 16, 24, 16
	tests := []struct {
		name  string
		reply any
		err   error
		want  int
	}{
		{"nil", nil, nil, 0},
		{"*int", &n, nil, 8},
		{"*string", &s, nil, stringHeader + 5},
		{"*[]byte, its capacity", &bs, nil, sliceHeader + 1024},
		{"*struct of numbers", pair, nil, pairSize},
		{"a cycle counts each node once", ring, nil, 2*nodeSize + 1 + 2},
		{"one block reached twice counts once", &[]*sizePair{shared, shared}, nil, sliceHeader + 2*8 + pairSize},
		{"an application error", &n, ServerError("no such key"), 8 + stringHeader + 11},
		{"unexported fields are walked too", &sizeHidden{
			m:   map[string]*int{"ab": &n},
			s:   []string{"xyz"},
			err: ServerError("e"),
		}, nil, (8 + 24 + 16) + (16 + 8 + mapEntryOverhead) + 2 + 8 + 16 + 3 + stringHeader + 1},
		{"a struct of everything", &sizeTree{
			Tags:  map[string]string{"k": "vv"},
			Kids:  []*sizeTree{{}},
			Extra: pair,
		}, nil, -1}, // checked below: more than its parts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := replySize(tt.reply, tt.err)
			if tt.want >= 0 && got != tt.want {
				t.Fatalf("replySize = %d, want %d", got, tt.want)
			}
			if tt.want < 0 && got < 2*72+1+2+pairSize {
				t.Fatalf("replySize = %d, less than the two trees, the map's strings and the pair", got)
			}
		})
	}
}

// TestReplySizeWalkIsBounded: a reply of many small values is walked a
// bounded number of steps, and the rest estimated from the part walked.
func TestReplySizeWalkIsBounded(t *testing.T) {
	strs := make([]string, 100000)
	for i := range strs {
		strs[i] = fmt.Sprintf("%08d", i) // 8 bytes each
	}
	want := 24 + len(strs)*16 + len(strs)*8
	var z sizer
	got := z.boxed(&strs)
	if z.steps > sizeWalkSteps {
		t.Fatalf("%d steps, bound %d", z.steps, sizeWalkSteps)
	}
	if got < want*9/10 || got > want*11/10 {
		t.Fatalf("estimate %d, want about %d", got, want)
	}
	// A long linked list is cut off, not followed to its end.
	var head *sizeNode
	for i := 0; i < 100000; i++ {
		head = &sizeNode{Name: "x", Next: head}
	}
	z = sizer{}
	z.boxed(head)
	if z.steps > sizeWalkSteps {
		t.Fatalf("%d steps on a long list, bound %d", z.steps, sizeWalkSteps)
	}
	// Wrapped errors are walked like any value.
	if replySize(nil, fmt.Errorf("ctx: %w", errors.New("boom"))) < 4+5 {
		t.Fatal("a wrapped error's text is not counted")
	}
}

// BenchmarkReplySize is the cost the server adds to each recorded call for
// a small reply.
func BenchmarkReplySize(b *testing.B) {
	reply := new(int)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		replySize(reply, nil)
	}
}
