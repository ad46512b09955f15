package rpc

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestHealthReportsServing(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	h, err := c.Health(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != HealthServing || h.Services != 1 || h.Connections != 1 || h.Durable {
		t.Fatalf("Health = %+v", h)
	}
}

func TestMethodsListsServicesAndTypes(t *testing.T) {
	s, _, addr, _ := startServer(t)
	if err := s.RegisterName("Echo", new(Arith)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	r, err := c.Methods(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range r.Services {
		names = append(names, svc.Name)
	}
	if !reflect.DeepEqual(names, []string{"Arith", "Echo"}) {
		t.Fatalf("services = %v, want [Arith Echo] (sorted)", names)
	}
	want := map[string]MethodInfo{
		"Arith.Add":    {Name: "Arith.Add", Args: "rpc.Args", Reply: "*int", ArgsJSON: `{"A":0,"B":0}`},
		"Arith.Mul":    {Name: "Arith.Mul", Args: "*rpc.Args", Reply: "*int", ArgsJSON: `{"A":0,"B":0}`},
		"Arith.Divide": {Name: "Arith.Divide", Args: "rpc.Args", Reply: "*rpc.Quotient", ArgsJSON: `{"A":0,"B":0}`},
		"Arith.Echo":   {Name: "Arith.Echo", Args: "string", Reply: "*string", ArgsJSON: `""`},
	}
	got := map[string]MethodInfo{}
	for i, m := range r.Services[0].Methods {
		got[m.Name] = m
		if i > 0 && r.Services[0].Methods[i-1].Name >= m.Name {
			t.Fatalf("methods not sorted: %v", r.Services[0].Methods)
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %+v, want %+v", name, got[name], w)
		}
	}
	if len(got) != len(s.Stats().Methods)/2 {
		t.Errorf("Arith lists %d methods, the server has %d per service", len(got), len(s.Stats().Methods)/2)
	}
}

func TestIntrospectionOffMakesBuiltinsUnknown(t *testing.T) {
	_, _, addr, _ := startServer(t, WithIntrospection(false))
	c := dial(t, addr)
	if _, err := c.Health(ctxT(t)); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("Health with introspection off: %v, want ErrUnknownMethod", err)
	}
	if _, err := c.Methods(ctxT(t)); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("Methods with introspection off: %v, want ErrUnknownMethod", err)
	}
}

// An at-most-once client's call of a built-in method is answered without
// the table: nothing is recorded for it.
func TestBuiltinsBypassTheTable(t *testing.T) {
	s, _, addr, _ := startServer(t)
	c := dial(t, addr, WithSemantics(atMostOnce()))
	var h HealthReply
	if err := c.Call(ctxT(t), HealthMethod, HealthArgs{}, &h); err != nil || h.Status != HealthServing {
		t.Fatalf("Health under at-most-once = %+v, %v", h, err)
	}
	if st := s.Table().Stats(); st.New != 0 {
		t.Fatalf("table admitted %d calls for a built-in method", st.New)
	}
}

// Server interceptors see the built-in methods, so they can guard them.
func TestInterceptorGuardsBuiltins(t *testing.T) {
	deny := func(ctx context.Context, ci *CallInfo, next Handler) error {
		if ci.ServiceMethod == MethodsMethod {
			return reject(CodeRejected, "rpc: %s needs a token", ci.ServiceMethod)
		}
		return next(ctx, ci)
	}
	_, _, addr, _ := startServer(t, WithServerInterceptor(deny))
	c := dial(t, addr)
	if _, err := c.Methods(ctxT(t)); !errors.Is(err, ErrRejected) {
		t.Fatalf("Methods through a refusing interceptor: %v, want ErrRejected", err)
	}
	if _, err := c.Health(ctxT(t)); err != nil {
		t.Fatalf("Health: %v", err)
	}
}
