package rpc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
)

var (
	typeOfError   = reflect.TypeOf((*error)(nil)).Elem()
	typeOfContext = reflect.TypeOf((*context.Context)(nil)).Elem()
)

// methodType is one registered method.
type methodType struct {
	name      string // "Service.Method"
	fn        reflect.Value
	rcvr      reflect.Value
	argType   reflect.Type
	replyType reflect.Type // always a pointer type
	hasError  bool         // net/rpc style; false for lab-style handlers
	hasCtx    bool         // takes a context.Context first
	// builtin, when set, answers the request itself (_semrpc.Health,
	// _semrpc.Methods): never through the at-most-once table.
	builtin func(s *Server) any

	stats callStats // executions only
}

// newArgs returns a pointer to decode into and the value to pass to the method.
func (m *methodType) newArgs() (ptr any, pass reflect.Value) {
	if m.argType.Kind() == reflect.Pointer {
		v := reflect.New(m.argType.Elem())
		return v.Interface(), v
	}
	v := reflect.New(m.argType)
	return v.Interface(), v.Elem()
}

func (m *methodType) newReply() reflect.Value {
	return reflect.New(m.replyType.Elem())
}

// callStats counts calls and their latency; safe for concurrent use.
type callStats struct {
	calls, errors atomic.Uint64
	total, max    atomic.Int64 // nanoseconds
}

func (cs *callStats) record(d time.Duration, failed bool) {
	cs.calls.Add(1)
	if failed {
		cs.errors.Add(1)
	}
	n := int64(d)
	cs.total.Add(n)
	for {
		old := cs.max.Load()
		if n <= old || cs.max.CompareAndSwap(old, n) {
			return
		}
	}
}

func (cs *callStats) snapshot() MethodStats {
	return MethodStats{
		Calls:   cs.calls.Load(),
		Errors:  cs.errors.Load(),
		Latency: time.Duration(cs.total.Load()),
		Max:     time.Duration(cs.max.Load()),
	}
}

// service is one registered receiver.
type service struct {
	name    string
	methods map[string]*methodType
}

// suitableMethods returns the methods of typ that follow net/rpc's shape
// (two arguments, the second a pointer, an error result) or the lab shape
// (the same with no result), optionally with a context.Context before the
// arguments. Other methods are skipped.
func suitableMethods(name string, rcvr reflect.Value) map[string]*methodType {
	typ := rcvr.Type()
	methods := make(map[string]*methodType)
	for i := 0; i < typ.NumMethod(); i++ {
		method := typ.Method(i)
		if !method.IsExported() {
			continue
		}
		mt := method.Type
		first := 1 // index of args among the inputs (0 is the receiver)
		hasCtx := mt.NumIn() == 4 && mt.In(1) == typeOfContext
		if hasCtx {
			first = 2
		}
		if mt.NumIn() != first+2 || mt.In(first+1).Kind() != reflect.Pointer {
			continue
		}
		hasError := false
		switch mt.NumOut() {
		case 0:
		case 1:
			if mt.Out(0) != typeOfError {
				continue
			}
			hasError = true
		default:
			continue
		}
		methods[method.Name] = &methodType{
			name:      name + "." + method.Name,
			fn:        method.Func,
			rcvr:      rcvr,
			argType:   mt.In(first),
			replyType: mt.In(first + 1),
			hasError:  hasError,
			hasCtx:    hasCtx,
		}
	}
	return methods
}

func newService(rcvr any, name string, useName bool) (*service, error) {
	if rcvr == nil {
		return nil, errors.New("rpc: Register of nil receiver")
	}
	v := reflect.ValueOf(rcvr)
	sname := reflect.Indirect(v).Type().Name()
	if useName {
		sname = name
	}
	if sname == "" {
		return nil, fmt.Errorf("rpc: no service name for type %s", v.Type())
	}
	if !useName && !token(sname) {
		return nil, fmt.Errorf("rpc: type %s is not exported", sname)
	}
	methods := suitableMethods(sname, v)
	if len(methods) == 0 {
		return nil, fmt.Errorf("rpc: type %s has no exported methods of suitable type "+
			"(func (t *T) M(args A, reply *R) error, or without the error result)", sname)
	}
	return &service{name: sname, methods: methods}, nil
}

func token(name string) bool {
	return name != "" && name[0] >= 'A' && name[0] <= 'Z'
}

// MethodStats are the counters of one method.
type MethodStats struct {
	Calls   uint64
	Errors  uint64
	Latency time.Duration // total
	Max     time.Duration
}

// Mean is the mean latency, or zero before the first call.
func (s MethodStats) Mean() time.Duration {
	if s.Calls == 0 {
		return 0
	}
	return s.Latency / time.Duration(s.Calls)
}
