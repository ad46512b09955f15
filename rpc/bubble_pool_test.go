package rpc

import (
	"context"
	"testing"
	"testing/synctest"
)

// A channel made in a testing/synctest bubble must not be used outside it.
// A client dialled in a bubble must therefore keep its recycled call
// channels to itself: with a package-wide pool, a client outside the
// bubble took them and its reader crashed the test binary with "send on
// synctest channel from outside bubble".
func TestClientMadeInABubbleKeepsItsChannelsThere(t *testing.T) {
	_, _, addr, _ := startServer(t)
	call := func(t *testing.T, c *Client) {
		var sum int
		if err := c.Call(context.Background(), "Arith.Add", Args{A: 1, B: 2}, &sum); err != nil || sum != 3 {
			t.Fatalf("Arith.Add = %d, %v; want 3, nil", sum, err)
		}
	}
	for range 10 {
		synctest.Test(t, func(t *testing.T) {
			c, err := Dial(context.Background(), "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				call(t, c)
			}
			c.Close()
		})
	}
	c, err := Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 100 {
		call(t, c)
	}
}
