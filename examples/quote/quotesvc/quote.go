package quotesvc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Metadata keys the service reads and writes.
const (
	KeyAuthorization = "authorization" // "Bearer <token>", checked by Auth
	KeyTenant        = "tenant"        // the caller's tenant, set by Auth from the token
	KeyServedBy      = "served-by"     // reply header: the server's name
)

// Catalog holds unit prices in cents.
var Catalog = map[string]int64{"apple": 50, "bread": 320, "cheese": 1250, "wine": 1800}

// Discounts gives some tenants a discount, in percent.
var Discounts = map[string]int64{"acme": 10}

// PriceArgs asks for the price of Qty units of Item.
type PriceArgs struct {
	Item string
	Qty  int
}

// PriceReply is a quote.
type PriceReply struct {
	Total    int64  // cents, after the tenant's discount
	Discount int64  // percent
	Tenant   string // the tenant the quote is for
	Caller   string // the common name of the caller's certificate
	Server   string // the server that made the quote
}

// Quote is the service. Name identifies the server in replies.
type Quote struct {
	Name string
}

// ErrUnknownItem is returned for an item not in the Catalog.
var ErrUnknownItem = errors.New("quote: unknown item")

// Price quotes an item for the caller's tenant.
func (q *Quote) Price(ctx context.Context, args PriceArgs, reply *PriceReply) error {
	unit, ok := Catalog[args.Item]
	if !ok {
		return fmt.Errorf("%w %q (have %s)", ErrUnknownItem, args.Item, strings.Join(items(), ", "))
	}
	if args.Qty <= 0 || args.Qty > 1_000_000 {
		return fmt.Errorf("quote: quantity %d out of range 1..1000000", args.Qty)
	}
	md, _ := rpc.FromIncomingContext(ctx)
	reply.Tenant = md.First(KeyTenant)
	reply.Discount = Discounts[reply.Tenant]
	reply.Total = unit * int64(args.Qty) * (100 - reply.Discount) / 100
	if certs := rpc.PeerCertificates(ctx); len(certs) > 0 {
		reply.Caller = certs[0].Subject.CommonName
	}
	reply.Server = q.Name
	return rpc.SetHeader(ctx, rpc.Pairs(KeyServedBy, q.Name))
}

func items() []string {
	out := make([]string, 0, len(Catalog))
	for k := range Catalog {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Auth returns a server interceptor that admits a request only if its
// metadata carries "authorization: Bearer <token>" with a token of tokens,
// which maps each token to its tenant. It replaces any tenant the caller
// sent with the token's, so that the method can trust it. A refused request
// does not run, and its caller is told so (rpc.ErrNotExecuted).
func Auth(tokens map[string]string) rpc.Interceptor {
	return func(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
		md, _ := rpc.FromIncomingContext(ctx)
		token, ok := strings.CutPrefix(md.First(KeyAuthorization), "Bearer ")
		tenant, known := tokens[token]
		if !ok || !known {
			return fmt.Errorf("quote: %s refused: missing or unknown bearer token: %w", call.ServiceMethod, rpc.ErrRejected)
		}
		md = rpc.JoinMetadata(md) // a copy: the caller's tenant is replaced, not kept
		md.Set(KeyTenant, tenant)
		return next(rpc.NewIncomingContext(ctx, md), call)
	}
}

// WithToken returns a client interceptor that sends token as the bearer
// token of every call.
func WithToken(token string) rpc.ClientInterceptor {
	return func(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
		return next(rpc.AppendToOutgoingContext(ctx, KeyAuthorization, "Bearer "+token), call)
	}
}

// Price asks c for a quote, and returns it with the server's name from the
// reply header.
func Price(ctx context.Context, c *rpc.Client, item string, qty int) (PriceReply, string, error) {
	var reply PriceReply
	var header rpc.Metadata
	err := c.Call(ctx, "Quote.Price", PriceArgs{Item: item, Qty: qty}, &reply,
		rpc.WithSemantics(semantics.AtLeastOnce()), rpc.WithHeader(&header))
	return reply, header.First(KeyServedBy), err
}
