package kv

import (
	"time"

	"6.5840/labrpc"
)

// Clerk talks to the servers, retrying until one answers.
type Clerk struct{ servers []*labrpc.ClientEnd }

// MakeClerk makes a clerk.
func MakeClerk(servers []*labrpc.ClientEnd) *Clerk { return &Clerk{servers: servers} }

// Put stores value under key.
func (ck *Clerk) Put(key, value string) {
	for {
		for _, s := range ck.servers {
			var reply PutReply
			if s.Call("KVServer.Put", PutArgs{key, value}, &reply) && reply.OK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Get returns the value of key.
func (ck *Clerk) Get(key string) string {
	for {
		for _, s := range ck.servers {
			var reply GetReply
			if s.Call("KVServer.Get", GetArgs{key}, &reply) && reply.OK {
				return reply.Value
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
