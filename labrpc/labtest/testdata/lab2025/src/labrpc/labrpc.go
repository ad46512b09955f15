// Package labrpc is this toy lab's own network (a copy of the one in
// ../../lab), which labtest swaps for semrpc's, written in the classic
// style: one goroutine receives every request, a goroutine per request
// delivers it, unreliable links sleep and drop.
package labrpc

import (
	"bytes"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"6.5840/labgob"
)

type request struct {
	end     interface{}
	method  string
	args    []byte
	replyCh chan response
}

type response struct {
	ok    bool
	reply []byte
}

// ClientEnd sends requests into the network.
type ClientEnd struct {
	name interface{}
	in   chan request
	done chan struct{}
}

// Call sends a request and waits for the reply; false if none came.
func (e *ClientEnd) Call(method string, args interface{}, reply interface{}) bool {
	var buf bytes.Buffer
	if err := labgob.NewEncoder(&buf).Encode(args); err != nil {
		panic(err)
	}
	req := request{end: e.name, method: method, args: buf.Bytes(), replyCh: make(chan response, 1)}
	select {
	case e.in <- req:
	case <-e.done:
		return false
	}
	res := <-req.replyCh
	if !res.ok {
		return false
	}
	if err := labgob.NewDecoder(bytes.NewReader(res.reply)).Decode(reply); err != nil {
		panic(err)
	}
	return true
}

// Network connects ends to servers.
type Network struct {
	mu       sync.Mutex
	reliable bool
	enabled  map[interface{}]bool
	servers  map[interface{}]*Server
	links    map[interface{}]interface{}
	in       chan request
	done     chan struct{}
	count    int32
}

// MakeNetwork starts a reliable network.
func MakeNetwork() *Network {
	n := &Network{reliable: true, enabled: map[interface{}]bool{}, servers: map[interface{}]*Server{},
		links: map[interface{}]interface{}{}, in: make(chan request), done: make(chan struct{})}
	go func() {
		for {
			select {
			case req := <-n.in:
				atomic.AddInt32(&n.count, 1)
				go n.deliver(req)
			case <-n.done:
				return
			}
		}
	}()
	return n
}

// Cleanup stops the network.
func (n *Network) Cleanup() { close(n.done) }

// Reliable turns drops and delays off (true) or on.
func (n *Network) Reliable(yes bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reliable = yes
}

// MakeEnd makes a client end.
func (n *Network) MakeEnd(name interface{}) *ClientEnd {
	return &ClientEnd{name: name, in: n.in, done: n.done}
}

// AddServer adds or replaces a server.
func (n *Network) AddServer(name interface{}, s *Server) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.servers[name] = s
}

// DeleteServer removes a server.
func (n *Network) DeleteServer(name interface{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.servers[name] = nil
}

// Connect links an end to a server.
func (n *Network) Connect(end, server interface{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[end] = server
}

// Enable turns an end on or off.
func (n *Network) Enable(end interface{}, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.enabled[end] = on
}

// GetTotalCount is the number of requests sent.
func (n *Network) GetTotalCount() int { return int(atomic.LoadInt32(&n.count)) }

func (n *Network) deliver(req request) {
	n.mu.Lock()
	on, reliable := n.enabled[req.end], n.reliable
	name := n.links[req.end]
	srv := n.servers[name]
	n.mu.Unlock()
	if !on || srv == nil {
		time.Sleep(time.Duration(rand.Intn(100)) * time.Millisecond)
		req.replyCh <- response{}
		return
	}
	if !reliable {
		time.Sleep(time.Duration(rand.Intn(27)) * time.Millisecond)
		if rand.Intn(10) == 0 {
			req.replyCh <- response{}
			return
		}
	}
	reply, ok := srv.dispatch(req)
	n.mu.Lock()
	gone := n.servers[name] != srv
	n.mu.Unlock()
	if gone || !ok || (!reliable && rand.Intn(10) == 0) {
		req.replyCh <- response{}
		return
	}
	req.replyCh <- response{ok: true, reply: reply}
}

// Server holds services.
type Server struct {
	mu       sync.Mutex
	services map[string]*Service
}

// MakeServer makes an empty server.
func MakeServer() *Server { return &Server{services: map[string]*Service{}} }

// AddService adds a service.
func (s *Server) AddService(svc *Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[svc.name] = svc
}

func (s *Server) dispatch(req request) ([]byte, bool) {
	svcName, method, _ := strings.Cut(req.method, ".")
	s.mu.Lock()
	svc := s.services[svcName]
	s.mu.Unlock()
	if svc == nil {
		return nil, false
	}
	m, ok := svc.methods[method]
	if !ok {
		return nil, false
	}
	args := reflect.New(m.Type.In(1))
	if err := labgob.NewDecoder(bytes.NewReader(req.args)).Decode(args.Interface()); err != nil {
		return nil, false
	}
	reply := reflect.New(m.Type.In(2).Elem())
	m.Func.Call([]reflect.Value{svc.rcvr, args.Elem(), reply})
	var buf bytes.Buffer
	if err := labgob.NewEncoder(&buf).Encode(reply.Interface()); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// Service is a receiver's lab-style methods.
type Service struct {
	name    string
	rcvr    reflect.Value
	methods map[string]reflect.Method
}

// MakeService collects rcvr's methods of the form M(args A, reply *R).
func MakeService(rcvr interface{}) *Service {
	v := reflect.ValueOf(rcvr)
	svc := &Service{name: reflect.Indirect(v).Type().Name(), rcvr: v, methods: map[string]reflect.Method{}}
	for i := 0; i < v.Type().NumMethod(); i++ {
		m := v.Type().Method(i)
		if m.Type.NumIn() == 3 && m.Type.NumOut() == 0 && m.Type.In(2).Kind() == reflect.Pointer {
			svc.methods[m.Name] = m
		}
	}
	return svc
}
