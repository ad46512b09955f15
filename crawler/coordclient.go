package crawler

import (
	"context"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// The Coordinator's methods, as an rpc server registers them.
const (
	methodLease     = "Coordinator.Lease"
	methodReport    = "Coordinator.Report"
	methodRelease   = "Coordinator.Release"
	methodHeartbeat = "Coordinator.Heartbeat"
)

// CoordinatorClient calls a Coordinator served by an rpc server, each
// method under the semantics it needs whatever the client's default:
// Lease, Release and Heartbeat at-least-once (they are safe to repeat),
// Report at-most-once (the server's duplicate table answers a retried
// report without running it again).
type CoordinatorClient struct {
	client       *rpc.Client
	leasePolicy  semantics.Policy
	reportPolicy semantics.Policy
}

// NewCoordinatorClient returns a CoordinatorClient calling through client.
// Closing client is the caller's business.
func NewCoordinatorClient(client *rpc.Client) *CoordinatorClient {
	return &CoordinatorClient{client: client, leasePolicy: semantics.AtLeastOnce(), reportPolicy: semantics.AtMostOnce()}
}

// Lease calls Coordinator.Lease.
func (cc *CoordinatorClient) Lease(ctx context.Context, args LeaseArgs) (LeaseReply, error) {
	var reply LeaseReply
	err := cc.client.Call(ctx, methodLease, args, &reply, rpc.WithSemantics(cc.leasePolicy))
	return reply, err
}

// Report calls Coordinator.Report.
func (cc *CoordinatorClient) Report(ctx context.Context, args ReportArgs) (ReportReply, error) {
	var reply ReportReply
	err := cc.client.Call(ctx, methodReport, args, &reply, rpc.WithSemantics(cc.reportPolicy))
	return reply, err
}

// Release gives back the lease worker holds, if any (Coordinator.Release),
// and reports whether there was one.
func (cc *CoordinatorClient) Release(ctx context.Context, worker string) (bool, error) {
	var reply ReleaseReply
	err := cc.client.Call(ctx, methodRelease, LeaseArgs{Worker: worker}, &reply, rpc.WithSemantics(cc.leasePolicy))
	return reply.Released, err
}

// Heartbeat calls Coordinator.Heartbeat.
func (cc *CoordinatorClient) Heartbeat(ctx context.Context, args HeartbeatArgs) (HeartbeatReply, error) {
	var reply HeartbeatReply
	err := cc.client.Call(ctx, methodHeartbeat, args, &reply, rpc.WithSemantics(cc.leasePolicy))
	return reply, err
}
