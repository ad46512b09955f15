// Package quotesvc is the service behind semrpc's quote example: a price
// quote service run as several servers behind one client, over mutual TLS,
// with metadata and OpenTelemetry tracing. It shows, in one place:
//
//   - several servers: the client is made with rpc.DialCluster and spreads
//     its calls over them (each reply names its server);
//   - TLS and identity: servers and clients hold certificates signed by one
//     CA (Certs writes them); the method reads the caller's certificate from
//     its context (rpc.PeerCertificates);
//   - metadata: the caller sends a bearer token and its tenant
//     (rpc.AppendToOutgoingContext); the server's Auth interceptor refuses a
//     call without a valid token before it runs; the method answers with a
//     header naming the server (rpc.SetHeader);
//   - OpenTelemetry: otelrpc's interceptors trace each call on both ends,
//     the trace context crossing in metadata; NewTracing prints the spans.
//
// Quotes are pure functions of the request, so a call may run on any
// server and be retried safely: the client uses at-least-once.
package quotesvc
