package kvservice

import (
	"context"
	"fmt"
	"sync"

	"github.com/semrpc/semrpc/stores/boltstore"
	"go.etcd.io/bbolt"
)

// GetArgs are the arguments of KV.Get.
type GetArgs struct{ Key string }

// GetReply is the reply of KV.Get. Found tells a missing key (Value "",
// Found false) from a key set to "" (Found true). A server older than the
// field never sets it; gob leaves it false, so a client that meets such a
// server should also take a non-empty Value as found (Client.Lookup does).
type GetReply struct {
	Value string
	Found bool
}

// PutArgs are the arguments of KV.Put.
type PutArgs struct{ Key, Value string }

// PutReply is the (empty) reply of KV.Put.
type PutReply struct{}

// AppendArgs are the arguments of KV.Append.
type AppendArgs struct{ Key, Value string }

// AppendReply is the reply of KV.Append: the value before the append.
type AppendReply struct{ Old string }

// ServiceName is the name KV registers under: its methods are "KV.Get",
// "KV.Put" and "KV.Append".
const ServiceName = "KV"

// bucket holds the durable KV's keys in the store's file.
var bucket = []byte("kv")

// KV is the key/value service. A missing key reads as "" with
// GetReply.Found false. It is safe for concurrent use.
type KV struct {
	store *boltstore.Store // nil: in memory

	mu   sync.Mutex // protects data
	data map[string]string
}

// New returns an empty in-memory KV. Its data and the server's at-most-once
// records are lost when the process exits.
func New() *KV {
	return &KV{data: make(map[string]string)}
}

// NewDurable returns a KV whose data lives in st's file, next to the
// server's completion records: serve it with rpc.WithDurableStore(st), and
// each at-most-once or exactly-once write commits its effect and its
// completion record in one transaction. Data already in st is kept.
func NewDurable(st *boltstore.Store) (*KV, error) {
	err := st.DB().Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kvservice: creating bucket: %w", err)
	}
	return &KV{store: st}, nil
}

// Get returns the value of args.Key and whether it is set: "" and
// Found false if it has none.
func (kv *KV) Get(ctx context.Context, args GetArgs, reply *GetReply) error {
	if kv.store == nil {
		kv.mu.Lock()
		reply.Value, reply.Found = kv.data[args.Key]
		kv.mu.Unlock()
		return nil
	}
	return kv.store.View(ctx, func(tx *bbolt.Tx) error {
		// nil only when missing: Put and Append never store a nil value.
		v := tx.Bucket(bucket).Get([]byte(args.Key))
		reply.Value, reply.Found = string(v), v != nil // string copies out of the tx
		return nil
	})
}

// Put sets args.Key to args.Value.
func (kv *KV) Put(ctx context.Context, args PutArgs, reply *PutReply) error {
	if kv.store == nil {
		kv.mu.Lock()
		kv.data[args.Key] = args.Value
		kv.mu.Unlock()
		return nil
	}
	return kv.store.Update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(args.Key), append([]byte{}, args.Value...)) // never nil, even for ""
	})
}

// Append adds args.Value to the end of args.Key's value and returns the
// value it had before.
func (kv *KV) Append(ctx context.Context, args AppendArgs, reply *AppendReply) error {
	if kv.store == nil {
		kv.mu.Lock()
		reply.Old = kv.data[args.Key]
		kv.data[args.Key] = reply.Old + args.Value
		kv.mu.Unlock()
		return nil
	}
	return kv.store.Update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		old := b.Get([]byte(args.Key))
		reply.Old = string(old) // copies: tx memory dies with the tx
		// A fresh slice: tx memory is read-only, and a nil value would
		// not tell an appended "" from a missing key.
		value := make([]byte, 0, len(old)+len(args.Value))
		return b.Put([]byte(args.Key), append(append(value, old...), args.Value...))
	})
}
