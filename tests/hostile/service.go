//go:build linux

package hostile

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
)

// Store is the service every attacked server runs: a small key/value store
// whose arguments carry a map, slices of strings and a recursive type, as
// real services' do, so that the attacks on arguments have something to
// aim at. It counts the executions of each method, so that a test can tell
// a refused call from one that ran.
type Store struct {
	mu   sync.Mutex // protects data
	data map[string][]byte

	puts, gets, reads, batches, lookups atomic.Int64
}

// PutArgs stores Value under Key, with optional Tags.
type PutArgs struct {
	Key   string
	Value []byte
	Tags  map[string]string
}

// PutReply is Put's answer.
type PutReply struct {
	Size int // the value's length
}

// GetArgs names a key.
type GetArgs struct {
	Key string
}

// GetReply is a value.
type GetReply struct {
	Value []byte
}

// BatchArgs asks for several keys at once; each row lists the fields
// wanted of the key at the same index.
type BatchArgs struct {
	Keys []string
	Rows [][]string
}

// BatchReply counts the keys found.
type BatchReply struct {
	Found int
}

// Path is a key's place in a hierarchy: a name and the path below it.
type Path struct {
	Name  string
	Child *Path
}

// Tree is a directory tree: a name and the trees below it.
type Tree struct {
	Name string
	Kids []*Tree
}

// LookupReply is how deep a path (or a tree) goes.
type LookupReply struct {
	Depth int
}

// BigKey holds a value of bigValueSize bytes from the start.
const BigKey = "big"

// newStore returns a store holding one value of bigSize bytes under BigKey.
func newStore(bigSize int) *Store {
	return &Store{data: map[string][]byte{BigKey: bytes.Repeat([]byte{'v'}, bigSize)}}
}

// Put stores a value.
func (s *Store) Put(args PutArgs, reply *PutReply) error {
	s.puts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[args.Key] = args.Value
	reply.Size = len(args.Value)
	return nil
}

// Get returns the stored value itself (shared, as a cache would).
func (s *Store) Get(args GetArgs, reply *GetReply) error {
	s.gets.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	reply.Value = s.data[args.Key]
	return nil
}

// Read returns a fresh copy of the value, as a store that reads from disk
// would: each reply owns its bytes.
func (s *Store) Read(args GetArgs, reply *GetReply) error {
	s.reads.Add(1)
	s.mu.Lock()
	v, ok := s.data[args.Key]
	s.mu.Unlock()
	if !ok {
		return errors.New("no such key")
	}
	reply.Value = bytes.Clone(v)
	return nil
}

// Batch looks up several keys.
func (s *Store) Batch(args BatchArgs, reply *BatchReply) error {
	s.batches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range args.Keys {
		if _, ok := s.data[k]; ok {
			reply.Found++
		}
	}
	return nil
}

// Lookup measures a path.
func (s *Store) Lookup(args Path, reply *LookupReply) error {
	s.lookups.Add(1)
	for p := &args; p != nil; p = p.Child {
		reply.Depth++
	}
	return nil
}

// Depth measures a tree.
func (s *Store) Depth(args Tree, reply *LookupReply) error {
	s.lookups.Add(1)
	for t := &args; t != nil; {
		reply.Depth++
		if len(t.Kids) == 0 {
			break
		}
		t = t.Kids[0]
	}
	return nil
}
