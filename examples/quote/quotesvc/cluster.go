package quotesvc

import (
	"context"
	"crypto/tls"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/otelrpc"
)

// NewServer returns a server of Quote named name, traced with otelOpts,
// admitting the bearer tokens of tokens (token → tenant). Serve it on a
// TLS listener (rpc.ListenTLS with ServerTLS).
func NewServer(name string, tokens map[string]string, otelOpts ...otelrpc.Option) (*rpc.Server, error) {
	srv := rpc.NewServer(
		otelrpc.ServerOption(otelOpts...), // outermost: refused calls are traced too
		rpc.WithServerInterceptor(Auth(tokens)),
	)
	if err := srv.Register(&Quote{Name: name}); err != nil {
		return nil, err
	}
	return srv, nil
}

// Dial returns a client that spreads its calls over the servers at addrs,
// over TLS with cfg, sending token with every call, traced with otelOpts.
func Dial(ctx context.Context, addrs []string, cfg *tls.Config, token string, otelOpts ...otelrpc.Option) (*rpc.Client, error) {
	opts := append(otelrpc.ClientOptions(otelOpts...),
		rpc.WithTLS(cfg),
		rpc.WithClientInterceptor(WithToken(token)),
	)
	return rpc.DialCluster(ctx, "tcp", addrs, opts...)
}
