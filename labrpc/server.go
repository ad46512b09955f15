package labrpc

import (
	"context"
	"flag"
	"log"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
	"github.com/semrpc/semrpc/rpc"
)

// Server is a collection of services reachable through the network. It
// wraps the rpc server core, so lab-style handlers (no result) and net/rpc
// handlers (an error result) both work, and at-most-once requests are
// deduplicated exactly as over TCP.
type Server struct {
	core  *rpc.Server
	count atomic.Int64 // requests received

	mu        sync.Mutex // protects following
	names     []string   // services added, for error messages
	methods   []string   // their methods, "Service.Method", sorted
	receivers []uintptr  // their receivers' addresses, to tell which server calls (sender.go)
}

// MakeServer returns a server with no services.
func MakeServer() *Server { return &Server{core: rpc.NewServer()} }

// MakeServerWith returns a server that dispatches to core, for a core made
// with options (a table, interceptors, a logger) or with services already
// registered.
func MakeServerWith(core *rpc.Server) *Server { return &Server{core: core} }

// Core returns the rpc server core the server dispatches to, e.g. to read
// its at-most-once table's statistics.
func (rs *Server) Core() *rpc.Server { return rs.core }

// AddService adds a service. A receiver without suitable methods is
// accepted silently, as the classic network accepted it (the 2025 lab's
// tester registers one at every server start); with go test -v a line says
// so. A second service of the same name is logged and otherwise ignored.
// Calls to either fail as calls to an unknown service.
func (rs *Server) AddService(svc *Service) {
	// Even a receiver without methods tells which goroutines are the
	// server's (sender.go).
	if p := receiverPointer(svc.rcvr); p != 0 {
		rs.mu.Lock()
		rs.receivers = append(rs.receivers, p)
		rs.mu.Unlock()
	}
	if len(methodNames(svc.name, svc.rcvr)) == 0 {
		if testVerbose() {
			log.Printf("labrpc: AddService(%s): no methods of a handler's shape: calls to %s fail", svc.name, svc.name)
		}
		return
	}
	// By name, like the classic network: the receiver's type need not be
	// exported, as net/rpc's Register would require.
	if err := rs.core.RegisterName(svc.name, svc.rcvr); err != nil {
		log.Printf("labrpc: AddService(%s): %v", svc.name, err)
		return
	}
	rs.mu.Lock()
	rs.names = append(rs.names, svc.name)
	rs.methods = append(rs.methods, methodNames(svc.name, svc.rcvr)...)
	sort.Strings(rs.methods)
	rs.mu.Unlock()
}

var (
	errorType   = reflect.TypeOf((*error)(nil)).Elem()
	contextType = reflect.TypeOf((*context.Context)(nil)).Elem()
)

// methodNames lists the methods of rcvr that can be called over the
// network, as "name.Method": exported, taking (args, *reply) or (ctx,
// args, *reply), returning nothing or an error.
func methodNames(name string, rcvr interface{}) []string {
	var out []string
	t := reflect.TypeOf(rcvr)
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		in := m.Type.NumIn() - 1 // without the receiver
		first := 1
		if in == 3 && m.Type.In(1) == contextType {
			first, in = 2, 2
		}
		if in != 2 || m.Type.In(first+1).Kind() != reflect.Pointer {
			continue
		}
		if o := m.Type.NumOut(); o > 1 || (o == 1 && m.Type.Out(0) != errorType) {
			continue
		}
		out = append(out, name+"."+m.Name)
	}
	return out
}

// methodList is the server's methods for a message: "A.X, A.Y" or "no
// methods".
func (rs *Server) methodList() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.methods) == 0 {
		return "no methods"
	}
	return "methods " + strings.Join(rs.methods, ", ")
}

// GetCount returns how many requests the server has received, including
// duplicates and requests for unknown methods.
func (rs *Server) GetCount() int { return int(rs.count.Load()) }

// Service is a receiver whose exported methods can be called over the
// network as "TypeName.Method".
type Service struct {
	name string
	rcvr interface{}
}

// MakeService wraps a receiver, usually a pointer to a struct. Its methods
// look like
//
//	func (t *T) Method(args A, reply *R)
//	func (t *T) Method(args A, reply *R) error
//
// and the service's name is the name of T.
func MakeService(rcvr interface{}) *Service {
	name := ""
	if t := reflect.TypeOf(rcvr); t != nil {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		name = t.Name()
	}
	return &Service{name: name, rcvr: rcvr}
}

// testVerbose reports whether the program is a test binary run with -v,
// without importing package testing (whose Verbose panics outside tests),
// and not by labtest -repeat for its own reading (labhook.Quiet).
func testVerbose() bool {
	f := flag.Lookup("test.v")
	return f != nil && f.Value.String() != "false" && !labhook.Quiet()
}
