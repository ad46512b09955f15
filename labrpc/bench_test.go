package labrpc

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// VoteArgs and VoteReply are shaped like Raft's RequestVote messages.
type VoteArgs struct {
	Term, CandidateId, LastLogIndex, LastLogTerm int
}

type VoteReply struct {
	Term        int
	VoteGranted bool
}

// Voter is the service the benchmarks call.
type Voter struct{}

// RequestVote grants every vote.
func (v *Voter) RequestVote(args *VoteArgs, reply *VoteReply) {
	reply.Term = args.Term
	reply.VoteGranted = true
}

// classicNet is a reference implementation of the classic lab network's
// design, written here to measure it: every message gets a fresh gob
// encoder and decoder (so type information is sent and compiled again each
// time), every call passes through one central channel and goroutine, and
// each request is served on a goroutine that waits for the handler with a
// fresh 100 ms timer per wait. It has no faults; the benchmarks use a
// reliable network.
type classicNet struct {
	reqs chan classicReq
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex // protects following
	enabled map[interface{}]bool
	conns   map[interface{}]interface{}
	servers map[interface{}]*classicServer
	count   int
	bytes   int64
}

type classicReq struct {
	end    interface{}
	method string
	args   []byte
	reply  chan classicReply
}

type classicReply struct {
	ok    bool
	reply []byte
}

type classicServer struct {
	mu      sync.Mutex // protects count
	count   int
	rcvr    reflect.Value
	methods map[string]reflect.Method
}

func newClassicNet() *classicNet {
	cn := &classicNet{
		reqs:    make(chan classicReq),
		done:    make(chan struct{}),
		enabled: make(map[interface{}]bool),
		conns:   make(map[interface{}]interface{}),
		servers: make(map[interface{}]*classicServer),
	}
	cn.wg.Add(1)
	go func() {
		defer cn.wg.Done()
		for {
			select {
			case req := <-cn.reqs:
				cn.mu.Lock()
				cn.count++
				cn.bytes += int64(len(req.args))
				cn.mu.Unlock()
				go cn.process(req)
			case <-cn.done:
				return
			}
		}
	}()
	return cn
}

func (cn *classicNet) close() { close(cn.done); cn.wg.Wait() }

func (cn *classicNet) add(end, server interface{}, rcvr interface{}) {
	cs := &classicServer{rcvr: reflect.ValueOf(rcvr), methods: make(map[string]reflect.Method)}
	t := reflect.TypeOf(rcvr)
	for i := 0; i < t.NumMethod(); i++ {
		cs.methods[t.Elem().Name()+"."+t.Method(i).Name] = t.Method(i)
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.enabled[end] = true
	cn.conns[end] = server
	cn.servers[server] = cs
}

func (cn *classicNet) process(req classicReq) {
	cn.mu.Lock()
	enabled, name := cn.enabled[req.end], cn.conns[req.end]
	srv := cn.servers[name]
	cn.mu.Unlock()
	if !enabled || srv == nil {
		req.reply <- classicReply{}
		return
	}
	done := make(chan classicReply)
	go func() { done <- srv.dispatch(req) }()
	var rep classicReply
	for got := false; !got; {
		select {
		case rep = <-done:
			got = true
		case <-time.After(100 * time.Millisecond):
			// the classic checks here whether the server is still alive
		}
	}
	cn.mu.Lock()
	cn.bytes += int64(len(rep.reply))
	cn.mu.Unlock()
	req.reply <- rep
}

func (cs *classicServer) dispatch(req classicReq) classicReply {
	cs.mu.Lock()
	cs.count++
	m, ok := cs.methods[req.method]
	cs.mu.Unlock()
	if !ok {
		return classicReply{}
	}
	args := reflect.New(m.Type.In(1).Elem())
	if err := gob.NewDecoder(bytes.NewReader(req.args)).DecodeValue(args); err != nil {
		return classicReply{}
	}
	reply := reflect.New(m.Type.In(2).Elem())
	m.Func.Call([]reflect.Value{cs.rcvr, args, reply})
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).EncodeValue(reply); err != nil {
		return classicReply{}
	}
	return classicReply{ok: true, reply: buf.Bytes()}
}

func (cn *classicNet) call(end interface{}, method string, args, reply interface{}) bool {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(args); err != nil {
		return false
	}
	req := classicReq{end: end, method: method, args: buf.Bytes(), reply: make(chan classicReply)}
	select {
	case cn.reqs <- req:
	case <-cn.done:
		return false
	}
	rep := <-req.reply
	if !rep.ok {
		return false
	}
	return gob.NewDecoder(bytes.NewReader(rep.reply)).Decode(reply) == nil
}

// runCallers makes b.N calls spread over callers goroutines and reports
// calls/s.
func runCallers(b *testing.B, callers int, call func(caller, i int) bool) {
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		share := b.N / callers
		if c < b.N%callers {
			share++
		}
		wg.Add(1)
		go func(c, share int) {
			defer wg.Done()
			for i := 0; i < share; i++ {
				if !call(c, i) {
					b.Error("call failed")
					return
				}
			}
		}(c, share)
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

var benchCallers = []int{1, 32}

// BenchmarkClassicStyle measures the classic design (see classicNet) with
// RequestVote-like arguments on a reliable network.
func BenchmarkClassicStyle(b *testing.B) {
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			cn := newClassicNet()
			defer cn.close()
			for c := 0; c < callers; c++ {
				cn.add(c, "server", &Voter{})
			}
			runCallers(b, callers, func(c, i int) bool {
				var reply VoteReply
				ok := cn.call(c, "Voter.RequestVote", &VoteArgs{Term: i, CandidateId: c, LastLogIndex: 7, LastLogTerm: 3}, &reply)
				return ok && reply.VoteGranted && reply.Term == i
			})
		})
	}
}

// BenchmarkLabrpc measures this package on the same workload.
func BenchmarkLabrpc(b *testing.B) {
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			net := MakeNetworkSeed(1)
			defer net.Cleanup()
			srv := MakeServer()
			srv.AddService(MakeService(&Voter{}))
			net.AddServer("server", srv)
			ends := make([]*ClientEnd, callers)
			for c := range ends {
				ends[c] = net.MakeEnd(c)
				net.Connect(c, "server")
				net.Enable(c, true)
			}
			runCallers(b, callers, func(c, i int) bool {
				var reply VoteReply
				ok := ends[c].Call("Voter.RequestVote", &VoteArgs{Term: i, CandidateId: c, LastLogIndex: 7, LastLogTerm: 3}, &reply)
				return ok && reply.VoteGranted && reply.Term == i
			})
		})
	}
}

// BenchmarkLabrpcTraced is BenchmarkLabrpc with the trace on: what the
// ring (and a label and a summary per call) cost.
func BenchmarkLabrpcTraced(b *testing.B) {
	net := MakeNetworkSeed(1)
	defer net.Cleanup()
	srv := MakeServer()
	srv.AddService(MakeService(&Voter{}))
	net.AddServer("server", srv)
	end := net.MakeEnd(0)
	net.Connect(0, "server")
	net.Enable(0, true)
	net.Label(0, "0→server")
	net.Summarize("Voter.RequestVote", func(v any) string {
		if a, ok := v.(*VoteArgs); ok {
			return fmt.Sprintf("term %d", a.Term)
		}
		return ""
	})
	net.EnableTrace(true)
	runCallers(b, 1, func(c, i int) bool {
		var reply VoteReply
		ok := end.Call("Voter.RequestVote", &VoteArgs{Term: i, CandidateId: c, LastLogIndex: 7, LastLogTerm: 3}, &reply)
		return ok && reply.VoteGranted && reply.Term == i
	})
}

// BenchmarkLabrpcTracedDefaults is BenchmarkLabrpc with the trace on and
// nothing else, as under labtest: each message gets the default summary,
// and the end's first calls look for the server that sends on it.
func BenchmarkLabrpcTracedDefaults(b *testing.B) {
	net := MakeNetworkSeed(1)
	defer net.Cleanup()
	srv := MakeServer()
	srv.AddService(MakeService(&Voter{}))
	net.AddServer("server", srv)
	end := net.MakeEnd(0)
	net.Connect(0, "server")
	net.Enable(0, true)
	net.EnableTrace(true)
	runCallers(b, 1, func(c, i int) bool {
		var reply VoteReply
		ok := end.Call("Voter.RequestVote", &VoteArgs{Term: i, CandidateId: c, LastLogIndex: 7, LastLogTerm: 3}, &reply)
		return ok && reply.VoteGranted && reply.Term == i
	})
}
