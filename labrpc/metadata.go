package labrpc

import (
	"fmt"

	"github.com/semrpc/semrpc/rpc"
)

// A request carries the caller's metadata to the server core and the
// reply's back (see rpc.MetadataCarrier); its peer is the caller's end.

var _ rpc.MetadataCarrier = (*request)(nil)

// IncomingMetadata implements rpc.MetadataCarrier.
func (r *request) IncomingMetadata() rpc.Metadata { return r.md }

// Peer implements rpc.MetadataCarrier: the caller's address is its end's
// name.
func (r *request) Peer() *rpc.Peer { return &rpc.Peer{Addr: endAddr{r.end}} }

// SetReplyMetadata implements rpc.MetadataCarrier.
// The server core calls it exactly when it gave the method a context
// that holds r (for its metadata and peer), which the method may keep:
// such a request is never reused.
func (r *request) SetReplyMetadata(header, trailer rpc.Metadata) {
	r.header, r.trailer = header, trailer
	r.exposed = true
}

// endAddr is an end's name as a net.Addr, on network "labrpc".
type endAddr struct{ name interface{} }

func (a endAddr) Network() string { return "labrpc" }
func (a endAddr) String() string  { return fmt.Sprint(a.name) }
