package rpc

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"

	"github.com/semrpc/semrpc/semantics"
)

// Built-in methods, served by the server core unless
// WithIntrospection(false). They are plain calls (never through the
// at-most-once table) and pass through the server's interceptors, so an
// authentication interceptor guards them as it guards the services.
const (
	// HealthMethod answers HealthArgs with a HealthReply.
	HealthMethod = "_semrpc.Health"
	// MethodsMethod answers MethodsArgs with a MethodsReply.
	MethodsMethod = "_semrpc.Methods"

	healthMethod  = HealthMethod
	methodsMethod = MethodsMethod
)

// HealthServing is the status of a server that runs calls. A server that
// shuts down answers every request, this one included, with
// ErrShuttingDown.
const HealthServing = "SERVING"

// HealthArgs are the arguments of _semrpc.Health (none).
type HealthArgs struct{}

// HealthReply is the answer of _semrpc.Health.
type HealthReply struct {
	Status      string // HealthServing
	Epoch       uint64 // the at-most-once table's epoch: it changes when the server restarts
	Durable     bool   // completion records survive restarts (exactly-once)
	Services    int    // registered services
	Connections int64  // open connections
	// Domain is the exactly-once domain of the server's durable store, as
	// in OpenReply ("" for none, and from servers that predate it).
	Domain string
}

// MethodsArgs are the arguments of _semrpc.Methods (none).
type MethodsArgs struct{}

// MethodsReply is the answer of _semrpc.Methods: the registered services,
// sorted by name.
type MethodsReply struct {
	Services []ServiceInfo
}

// ServiceInfo describes one registered service.
type ServiceInfo struct {
	Name    string
	Methods []MethodInfo // sorted by name
}

// MethodInfo describes one method: its name and the Go type names of its
// argument and reply, as reflect prints them ("main.Args", "*int").
type MethodInfo struct {
	Name  string // "Service.Method"
	Args  string
	Reply string
	// ArgsJSON is the argument's zero value in JSON, a template for a call
	// through the JSON codec; empty if the type has no JSON form.
	ArgsJSON string
}

// WithIntrospection turns on (the default) or off the built-in methods
// _semrpc.Health and _semrpc.Methods. Off, they are unknown methods.
func WithIntrospection(on bool) Option {
	return func(o *options) { o.noIntrospection = !on }
}

var (
	healthMethodType = &methodType{
		name:      healthMethod,
		argType:   reflect.TypeOf(HealthArgs{}),
		replyType: reflect.TypeOf(&HealthReply{}),
		builtin:   func(s *Server) any { return s.health() },
	}
	methodsMethodType = &methodType{
		name:      methodsMethod,
		argType:   reflect.TypeOf(MethodsArgs{}),
		replyType: reflect.TypeOf(&MethodsReply{}),
		builtin:   func(s *Server) any { return s.methods() },
	}
)

// builtinMethod returns the built-in method named serviceMethod, or nil if
// there is none or introspection is off.
func (s *Server) builtinMethod(serviceMethod string) *methodType {
	if s.opts.noIntrospection {
		return nil
	}
	switch serviceMethod {
	case healthMethod:
		return healthMethodType
	case methodsMethod:
		return methodsMethodType
	}
	return nil
}

func (s *Server) health() *HealthReply {
	s.mu.RLock()
	n := len(s.services)
	s.mu.RUnlock()
	return &HealthReply{
		Status:      HealthServing,
		Epoch:       s.table.Epoch(),
		Durable:     s.durable,
		Services:    n,
		Connections: s.connCount.Load(),
		Domain:      s.domain,
	}
}

func (s *Server) methods() *MethodsReply {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := &MethodsReply{Services: make([]ServiceInfo, 0, len(s.services))}
	for _, svc := range s.services {
		si := ServiceInfo{Name: svc.name, Methods: make([]MethodInfo, 0, len(svc.methods))}
		for _, m := range svc.methods {
			si.Methods = append(si.Methods, MethodInfo{
				Name:     m.name,
				Args:     m.argType.String(),
				Reply:    m.replyType.String(),
				ArgsJSON: zeroJSON(m.argType),
			})
		}
		sort.Slice(si.Methods, func(i, j int) bool { return si.Methods[i].Name < si.Methods[j].Name })
		r.Services = append(r.Services, si)
	}
	sort.Slice(r.Services, func(i, j int) bool { return r.Services[i].Name < r.Services[j].Name })
	return r
}

// zeroJSON returns the JSON form of t's zero value (of the value a pointer
// type points to), or "" if it has none.
func zeroJSON(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	b, err := json.Marshal(reflect.New(t).Interface())
	if err != nil {
		return ""
	}
	return string(b)
}

// Health calls _semrpc.Health on the client's server, as a plain call
// (one attempt: a server that is down fails it at once). For a client made
// by DialCluster, one server answers, chosen as for any call, and the reply
// does not say which: to ask each server, Dial each address (Servers tells
// which ones the client holds in rotation).
func (c *Client) Health(ctx context.Context) (*HealthReply, error) {
	var r HealthReply
	if err := c.Call(ctx, HealthMethod, HealthArgs{}, &r, WithSemantics(semantics.NoRetry())); err != nil {
		return nil, err
	}
	return &r, nil
}

// Methods calls _semrpc.Methods on the client's server, as a plain call;
// for a client made by DialCluster, on one of its servers.
func (c *Client) Methods(ctx context.Context) (*MethodsReply, error) {
	var r MethodsReply
	if err := c.Call(ctx, MethodsMethod, MethodsArgs{}, &r, WithSemantics(semantics.NoRetry())); err != nil {
		return nil, err
	}
	return &r, nil
}
