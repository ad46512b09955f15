package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/semrpc/semrpc/semantics"
)

// Metadata is string metadata that travels with a call: from the caller to
// the method (request metadata), and from the method back to the caller
// (header and trailer metadata). Keys are case-insensitive: they are stored
// lowercased. A key may have several values.
//
// On the wire it is a field of the request and response headers, which a
// stock net/rpc peer ignores.
type Metadata map[string][]string

// Limits on the metadata of one request, and on the header and trailer of
// one reply (each): beyond them the call fails with ErrMetadataTooLarge.
// A key without values counts as one entry, and its length once, so that
// no metadata is free: 350,000 keys without values are as much over the
// limits as 350,000 values.
const (
	// MaxMetadataEntries bounds the number of entries: every value (over
	// all keys), and every key that has none.
	MaxMetadataEntries = 64
	// MaxMetadataBytes bounds the sum of the lengths of keys and values
	// (a key counts once per value, and once if it has none).
	MaxMetadataBytes = 8 << 10
)

// ErrMetadataTooLarge is wrapped by the error of a call whose metadata is
// over MaxMetadataEntries or MaxMetadataBytes, and returned by SetHeader and
// SetTrailer for metadata that would be. The call is not sent.
var ErrMetadataTooLarge = errors.New("rpc: metadata too large")

// ErrBadMetadata is wrapped by the error of a call whose metadata has an
// invalid key (empty, or with characters other than ASCII letters, digits
// and "-_."), or that was built from an odd number of strings. The call is
// not sent.
var ErrBadMetadata = errors.New("rpc: invalid metadata")

// NewMetadata returns metadata with one value per key of m.
func NewMetadata(m map[string]string) Metadata {
	md := make(Metadata, len(m))
	for k, v := range m {
		md.Append(k, v)
	}
	return md
}

// Pairs returns metadata made of key, value pairs. An odd number of strings
// gives the last key an empty value, and metadata that fails validation
// when sent (ErrBadMetadata).
func Pairs(kv ...string) Metadata {
	md := make(Metadata, len(kv)/2)
	appendPairs(md, kv)
	return md
}

// oddKey marks metadata built from an odd number of strings; its
// uppercase letters make it an invalid key, so sending it fails.
const oddKey = "_ODD_PAIRS"

func appendPairs(md Metadata, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		md.Append(kv[i], kv[i+1])
	}
	if len(kv)%2 == 1 {
		md[oddKey] = append(md[oddKey], kv[len(kv)-1])
	}
}

// Get returns the values of key (case-insensitive), nil if there are none.
func (md Metadata) Get(key string) []string {
	return md[strings.ToLower(key)]
}

// First returns the first value of key, or "" if there is none.
func (md Metadata) First(key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (md Metadata) Set(key string, values ...string) {
	if len(values) == 0 {
		delete(md, strings.ToLower(key))
		return
	}
	md[strings.ToLower(key)] = values
}

// Append adds values to key.
func (md Metadata) Append(key string, values ...string) {
	if len(values) == 0 {
		return
	}
	k := strings.ToLower(key)
	md[k] = append(md[k], values...)
}

// Delete removes key.
func (md Metadata) Delete(key string) { delete(md, strings.ToLower(key)) }

// Len returns the number of keys.
func (md Metadata) Len() int { return len(md) }

// Copy returns a deep copy of md.
func (md Metadata) Copy() Metadata {
	if md == nil {
		return nil
	}
	out := make(Metadata, len(md))
	for k, v := range md {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// JoinMetadata returns new metadata holding the values of all of mds, in
// order.
func JoinMetadata(mds ...Metadata) Metadata {
	out := Metadata{}
	for _, md := range mds {
		for k, v := range md {
			out[k] = append(out[k], v...)
		}
	}
	return out
}

// Validate reports whether md may be sent: every key valid, and within
// MaxMetadataEntries and MaxMetadataBytes. The error wraps ErrBadMetadata
// or ErrMetadataTooLarge.
func (md Metadata) Validate() error {
	entries, size := 0, 0
	for k, vs := range md {
		if k == oddKey {
			last := "" // none from a peer that sent the key alone
			if len(vs) > 0 {
				last = vs[len(vs)-1]
			}
			return fmt.Errorf("%w: an odd number of strings given as key, value pairs (last: %s)", ErrBadMetadata, quoteText(last, maxNameBytes))
		}
		if !validKey(k) {
			return fmt.Errorf("%w: key %s (want lowercase ASCII letters, digits, '-', '_', '.')", ErrBadMetadata, quoteText(k, maxNameBytes))
		}
		n := max(len(vs), 1) // a key without values is an entry too
		entries += n
		size += n * len(k)
		for _, v := range vs {
			size += len(v)
		}
	}
	if entries > MaxMetadataEntries || size > MaxMetadataBytes {
		return fmt.Errorf("%w: %d entries, %d bytes (limits %d entries, %d bytes; every value is an entry, and so is every key without one)",
			ErrMetadataTooLarge, entries, size, MaxMetadataEntries, MaxMetadataBytes)
	}
	return nil
}

// validKey accepts non-empty lowercase keys of ASCII letters, digits and
// "-_.", as HTTP/2 and gRPC metadata do (so the keys can cross to them).
func validKey(k string) bool {
	if k == "" || len(k) > MaxMetadataBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// String returns md as "k=v, k=v" with its keys sorted.
func (md Metadata) String() string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range md[k] {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%q", k, v)
		}
	}
	return b.String()
}

// Context keys.
type (
	outgoingKey struct{}
	incomingKey struct{}
)

// NewOutgoingContext returns a context whose calls send md, replacing
// metadata added before. md must not be modified afterwards.
func NewOutgoingContext(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, outgoingKey{}, md)
}

// AppendToOutgoingContext returns a context whose calls send the given
// key, value pairs besides the metadata ctx already sends. An odd number
// of strings makes the calls fail, not sent, with ErrBadMetadata.
func AppendToOutgoingContext(ctx context.Context, kv ...string) context.Context {
	old, _ := ctx.Value(outgoingKey{}).(Metadata)
	md := old.Copy()
	if md == nil {
		md = make(Metadata, len(kv)/2)
	}
	appendPairs(md, kv)
	return context.WithValue(ctx, outgoingKey{}, md)
}

// FromOutgoingContext returns the metadata calls made with ctx send, and
// whether there is any. The caller must not modify it.
func FromOutgoingContext(ctx context.Context) (Metadata, bool) {
	md, ok := ctx.Value(outgoingKey{}).(Metadata)
	return md, ok && md != nil
}

// NewIncomingContext returns a context carrying md as the metadata of the
// request being served: servers do this for methods, tests may do it to
// call a method directly.
func NewIncomingContext(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, incomingKey{}, md)
}

// FromIncomingContext returns the metadata the caller sent with the
// request served under ctx, and whether ctx is such a context. The metadata
// is empty (not nil) when the caller sent none. It is the request's own:
// changes to it are seen by whatever runs later for the same request.
func FromIncomingContext(ctx context.Context) (Metadata, bool) {
	md, ok := ctx.Value(incomingKey{}).(Metadata)
	return md, ok
}

// ReplyMetadata holds the metadata of a reply: the header and the trailer
// the method set (SetHeader, SetTrailer). On a unary call both arrive with
// the reply; they differ in name only, for code written against gRPC.
type ReplyMetadata struct {
	Header, Trailer Metadata
}

// WithHeader asks a call to store the header metadata of its reply in *md
// (of the last attempt that got an answer; an answer that is an error
// counts). Call-level only.
func WithHeader(md *Metadata) Option {
	return func(o *options) { o.replyHeader = md }
}

// WithTrailer asks a call to store the trailer metadata of its reply in
// *md, as WithHeader does. Call-level only.
func WithTrailer(md *Metadata) Option {
	return func(o *options) { o.replyTrailer = md }
}

// serverCall is the per-request state of metadata on the server: the
// request's metadata and peer, and the reply metadata the method sets. It
// is itself the method's context (one allocation per request).
type serverCall struct {
	context.Context
	peer peerSource

	mu       sync.Mutex // protects following
	incoming Metadata   // made empty when read if the caller sent none
	header   Metadata
	trailer  Metadata
	sent     bool // the reply left: later SetHeader and SetTrailer fail
}

// serverCallKey finds the serverCall among a context's values.
type serverCallKey struct{}

// Value answers for the request's metadata and peer, and the call itself.
func (sc *serverCall) Value(key any) any {
	switch key.(type) {
	case incomingKey:
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if sc.incoming == nil {
			sc.incoming = Metadata{} // its own: a method may write to it
		}
		return sc.incoming
	case peerKey:
		if p := sc.peer.peer(); p != nil {
			return p
		}
	case serverCallKey:
		return sc
	}
	return sc.Context.Value(key)
}

// newServerCall wraps ctx for one request. It returns an error (to answer,
// the method not run) if the request's metadata is not acceptable.
func newServerCall(ctx context.Context, md Metadata, peer peerSource) (*serverCall, error) {
	if len(md) > 0 {
		if err := md.Validate(); err != nil {
			return nil, reject(CodeRejected, "rpc: request refused: %v", err)
		}
	}
	return &serverCall{Context: ctx, incoming: md, peer: peer}, nil
}

// acceptReplyMetadata checks the reply metadata of a response a client
// read, whose answer was callErr. Metadata over the limits, or malformed
// (a server that is not semrpc's, or hostile: ours refuses it in SetHeader)
// is dropped; a call that succeeded then fails as reply unusable (the
// method ran), and an error answer stays what it is.
func acceptReplyMetadata(resp *wireResponse, callErr error) error {
	if len(resp.Header) == 0 && len(resp.Trailer) == 0 {
		return callErr
	}
	err := resp.Header.Validate()
	if err == nil {
		err = resp.Trailer.Validate()
	}
	if err == nil {
		return callErr
	}
	resp.Header, resp.Trailer = nil, nil
	if callErr != nil {
		return callErr
	}
	return semantics.Unusable(fmt.Errorf("rpc: %s ran, but the metadata of its reply is unusable: %w", quoteName(resp.ServiceMethod), err))
}

// finish closes the call to SetHeader and SetTrailer and returns what they set.
func (sc *serverCall) finish() (header, trailer Metadata) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.sent = true
	return sc.header, sc.trailer
}

// ErrReplySent is returned by SetHeader and SetTrailer once the reply has
// left (the method returned).
var ErrReplySent = errors.New("rpc: reply already sent")

// errNotServing is returned by SetHeader and SetTrailer outside a method.
var errNotServing = errors.New("rpc: SetHeader/SetTrailer: the context is not a method's (no call is being served)")

// SetHeader adds md to the header metadata of the reply of the call served
// under ctx. It may be called several times while the method runs; the
// metadata is sent with the reply, which a caller reads with WithHeader.
// It fails if ctx is not a method's context, after the method returned
// (ErrReplySent), or if the header would be over the limits
// (ErrMetadataTooLarge), leaving the header as it was.
func SetHeader(ctx context.Context, md Metadata) error {
	return setReplyMetadata(ctx, md, false)
}

// SetTrailer adds md to the trailer metadata of the reply, as SetHeader
// does to its header. A caller reads it with WithTrailer.
func SetTrailer(ctx context.Context, md Metadata) error {
	return setReplyMetadata(ctx, md, true)
}

func setReplyMetadata(ctx context.Context, md Metadata, trailer bool) error {
	sc, ok := ctx.Value(serverCallKey{}).(*serverCall)
	if !ok {
		return errNotServing
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.sent {
		return ErrReplySent
	}
	dst := &sc.header
	if trailer {
		dst = &sc.trailer
	}
	merged := JoinMetadata(*dst, md)
	if err := merged.Validate(); err != nil {
		return err
	}
	*dst = merged
	return nil
}

// MetadataCarrier is implemented by an ArgsDecoder whose transport carries
// metadata: Handle gives the method the request's metadata and peer, and,
// before it returns, hands the reply's header and trailer to
// SetReplyMetadata. labrpc's requests are carriers.
type MetadataCarrier interface {
	ArgsDecoder
	// IncomingMetadata returns the metadata sent with the request.
	IncomingMetadata() Metadata
	// Peer returns the caller, or nil if the transport cannot tell.
	Peer() *Peer
	// SetReplyMetadata receives the reply's metadata (each may be nil).
	SetReplyMetadata(header, trailer Metadata)
}

// outgoingMetadata returns the metadata to send with an attempt made under
// ctx, or an error (not sent, permanent) if it cannot be sent.
func outgoingMetadata(ctx context.Context, serviceMethod string) (Metadata, error) {
	md, ok := ctx.Value(outgoingKey{}).(Metadata)
	if !ok || len(md) == 0 {
		return nil, nil
	}
	if err := md.Validate(); err != nil {
		return nil, semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: %s not sent: %w", serviceMethod, err)))
	}
	return md, nil
}

// seesContext reports whether anything that runs for a request of m can
// look at its context: the method itself, or a server interceptor. When
// nothing can, and the request has no metadata, the server spares it the
// per-request metadata state.
func (s *Server) seesContext(m *methodType) bool {
	return m.hasCtx || len(s.opts.serverInterceptors) > 0
}

// executeConn runs a request read from a connection (rwc) with its
// metadata and peer in the method's context, and keeps the reply metadata
// in tk.req for the response.
func (s *Server) executeConn(ctx context.Context, rwc io.ReadWriteCloser, tk *task) (any, error) {
	if tk.req.Metadata == nil && !s.seesContext(tk.m) {
		return s.execute(ctx, tk.m, tk.req.Sem, tk.ptr, tk.pass)
	}
	sc, err := newServerCall(ctx, tk.req.Metadata, peerSource{conn: rwc})
	if err != nil {
		s.rejected.Add(1)
		return nil, err
	}
	reply, err := s.execute(sc, tk.m, tk.req.Sem, tk.ptr, tk.pass)
	tk.req.replyHeader, tk.req.replyTrailer = sc.finish()
	return reply, err
}

// replyWithMetadata is a reply kept in the at-most-once table with the
// reply metadata its method set, so that duplicates answered from the table
// get both.
type replyWithMetadata struct {
	reply           any
	header, trailer Metadata
}

// keepReplyMetadata returns what the table keeps of a reply: the reply
// itself, or, if the method set reply metadata, the reply with it.
func keepReplyMetadata(ctx context.Context, reply any) any {
	sc, ok := ctx.Value(serverCallKey{}).(*serverCall)
	if !ok {
		return reply
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.header == nil && sc.trailer == nil {
		return reply
	}
	return &replyWithMetadata{reply: reply, header: sc.header, trailer: sc.trailer}
}

// replayReplyMetadata unwraps a reply kept by keepReplyMetadata, setting
// its metadata on the duplicate's call.
func replayReplyMetadata(ctx context.Context, kept any) any {
	rw, ok := kept.(*replyWithMetadata)
	if !ok {
		return kept
	}
	if sc, ok := ctx.Value(serverCallKey{}).(*serverCall); ok {
		sc.mu.Lock()
		if !sc.sent {
			sc.header, sc.trailer = rw.header, rw.trailer
		}
		sc.mu.Unlock()
	}
	return rw.reply
}
