package rpc

import (
	"errors"
	"strings"
	"testing"
)

func TestCallBasic(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	ctx := ctxT(t)

	tests := []struct {
		method string
		args   any
		want   int
	}{
		{"Arith.Add", Args{7, 8}, 15},
		{"Arith.Mul", &Args{7, 8}, 56},
		{"Arith.Sub", Args{7, 8}, -1}, // lab-style handler
	}
	for _, tt := range tests {
		var got int
		if err := c.Call(ctx, tt.method, tt.args, &got); err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		if got != tt.want {
			t.Errorf("%s = %d, want %d", tt.method, got, tt.want)
		}
	}

	var q Quotient
	err := c.Call(ctx, "Arith.Divide", Args{1, 0}, &q)
	var se ServerError
	if !errors.As(err, &se) || se.Error() != "divide by zero" {
		t.Fatalf("Divide by zero: err = %v, want ServerError(divide by zero)", err)
	}
	if !errors.Is(err, ErrApplication) || errors.Is(err, ErrMaybeExecuted) || errors.Is(err, ErrNotExecuted) {
		t.Errorf("application error has wrong class: %v", err)
	}

	err = c.Call(ctx, "Arith.Nope", Args{}, &q)
	if err == nil || !errors.Is(err, ErrNotExecuted) || !strings.Contains(err.Error(), "can't find method") {
		t.Errorf("unknown method: err = %v, want not-executed 'can't find method'", err)
	}
	// The connection is still usable after the error.
	var got int
	if err := c.Call(ctx, "Arith.Add", Args{1, 2}, &got); err != nil || got != 3 {
		t.Fatalf("after error: %d, %v", got, err)
	}
}
