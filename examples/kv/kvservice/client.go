package kvservice

import (
	"context"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Client calls a KV service. Gets are at-least-once (they are idempotent);
// Puts and Appends at-most-once unless WithWritePolicy says otherwise. It is
// safe for concurrent use.
type Client struct {
	rc    *rpc.Client
	read  semantics.Policy
	write semantics.Policy
}

// NewClient returns a client making its calls through rc. Closing rc is
// the caller's business.
func NewClient(rc *rpc.Client) *Client {
	return &Client{rc: rc, read: semantics.AtLeastOnce(), write: semantics.AtMostOnce()}
}

// WithWritePolicy returns a copy of c that makes Puts and Appends under p,
// such as semantics.ExactlyOnce() against a durable server.
func (c *Client) WithWritePolicy(p semantics.Policy) *Client {
	cp := *c
	cp.write = p
	return &cp
}

// WithReadPolicy returns a copy of c that makes Gets under p, such as
// semantics.AtLeastOnce(semantics.MaxAttempts(0)) to retry until the
// call's context ends instead of giving up after a few lost attempts.
func (c *Client) WithReadPolicy(p semantics.Policy) *Client {
	cp := *c
	cp.read = p
	return &cp
}

// RPC returns the underlying rpc client.
func (c *Client) RPC() *rpc.Client { return c.rc }

// Get returns key's value, "" if it has none (Lookup tells the two apart).
func (c *Client) Get(ctx context.Context, key string) (string, error) {
	v, _, err := c.Lookup(ctx, key)
	return v, err
}

// Lookup returns key's value and whether key is set, so that a missing key
// ("", false) differs from one set to "" ("", true).
func (c *Client) Lookup(ctx context.Context, key string) (value string, found bool, err error) {
	var reply GetReply
	err = c.rc.Call(ctx, ServiceName+".Get", GetArgs{Key: key}, &reply, rpc.WithSemantics(c.read))
	// A server from before GetReply.Found never sets it: a value still
	// proves the key is set.
	return reply.Value, reply.Found || reply.Value != "", err
}

// Put sets key to value.
func (c *Client) Put(ctx context.Context, key, value string) error {
	var reply PutReply
	return c.rc.Call(ctx, ServiceName+".Put", PutArgs{Key: key, Value: value}, &reply, rpc.WithSemantics(c.write))
}

// Append appends value to key's value and returns the value before.
func (c *Client) Append(ctx context.Context, key, value string) (old string, err error) {
	var reply AppendReply
	err = c.rc.Call(ctx, ServiceName+".Append", AppendArgs{Key: key, Value: value}, &reply, rpc.WithSemantics(c.write))
	return reply.Old, err
}
