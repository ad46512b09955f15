package labrpc

import (
	"log"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/semrpc/semrpc/rpc"
)

// Server is a collection of services reachable through the network. It
// wraps the rpc server core, so lab-style handlers (no result) and net/rpc
// handlers (an error result) both work, and at-most-once requests are
// deduplicated exactly as over TCP.
type Server struct {
	core  *rpc.Server
	count atomic.Int64 // requests received

	mu    sync.Mutex // protects names
	names []string   // services added, for error messages
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

// AddService adds a service. A receiver without suitable methods, or a
// second service of the same name, is logged and otherwise ignored; calls to
// it then fail as calls to an unknown service.
func (rs *Server) AddService(svc *Service) {
	// By name, like the classic network: the receiver's type need not be
	// exported, as net/rpc's Register would require.
	if err := rs.core.RegisterName(svc.name, svc.rcvr); err != nil {
		log.Printf("labrpc: AddService(%s): %v", svc.name, err)
		return
	}
	rs.mu.Lock()
	rs.names = append(rs.names, svc.name)
	rs.mu.Unlock()
}

// GetCount returns how many requests the server has received, including
// duplicates and requests for unknown methods.
func (rs *Server) GetCount() int { return int(rs.count.Load()) }

func (rs *Server) serviceNames() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.names...)
}

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
