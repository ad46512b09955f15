// Package kv is this toy lab's key/value service on top of package replica.
package kv

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"6.5840/labrpc"
	"6.5840/replica"
)

// PutArgs and the rest are the service's messages.
type PutArgs struct{ Key, Value string }

// PutReply says whether the server led and committed.
type PutReply struct{ OK bool }

// GetArgs names a key.
type GetArgs struct{ Key string }

// GetReply returns its value.
type GetReply struct {
	OK    bool
	Value string
}

// KVServer applies committed puts to a map.
type KVServer struct {
	mu      sync.Mutex
	rp      *replica.Replica
	data    map[string]string
	applyCh chan string
	// Checksum makes every Put hash 8 MiB, as if the server
	// snapshotted its state: CPU work per operation.
	Checksum atomic.Bool
	sum      [32]byte

	snapshots chan []byte
}

func (kv *KVServer) installSnapshots() {
	for s := range kv.snapshots {
		kv.mu.Lock()
		kv.sum = sha256.Sum256(s)
		kv.mu.Unlock()
	}
}

var scratch = make([]byte, 8<<20)

// StartKVServer starts a server and its replica.
func StartKVServer(peers []*labrpc.ClientEnd, me int) *KVServer {
	kv := &KVServer{data: map[string]string{}, applyCh: make(chan string), snapshots: make(chan []byte)}
	kv.rp = replica.Make(peers, me, kv.applyCh)
	go kv.installSnapshots() // never stopped: Kill leaves it blocked
	return kv
}

// Replica returns the server's replica, for its RPC service.
func (kv *KVServer) Replica() *replica.Replica { return kv.rp }

// Put stores a value once a majority holds it.
func (kv *KVServer) Put(args PutArgs, reply *PutReply) {
	if _, ok := kv.rp.Append(args.Key + "=" + args.Value); !ok {
		return
	}
	<-kv.applyCh
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.data[args.Key] = args.Value
	if kv.Checksum.Load() {
		kv.sum = sha256.Sum256(scratch)
	}
	reply.OK = true
}

// Get reads a value at the leader.
func (kv *KVServer) Get(args GetArgs, reply *GetReply) {
	if _, ok := kv.rp.Append("get " + args.Key); !ok {
		return
	}
	<-kv.applyCh
	kv.mu.Lock()
	defer kv.mu.Unlock()
	reply.OK, reply.Value = true, kv.data[args.Key]
}

// Kill stops the server's replica; the goroutines handing it commands stay
// blocked, as in many student solutions.
func (kv *KVServer) Kill() { kv.rp.Kill() }
