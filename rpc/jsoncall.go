package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/semrpc/semrpc/semantics"
)

// JSONCallMethod is the reserved method behind Client.CallJSON: it carries
// the name of a method and its arguments as JSON over the ordinary wire, so
// that a caller without the method's Go types (the semrpc command, a
// gateway) makes calls with every policy, metadata and deadline. The
// server decodes the arguments strictly (a field the argument type does not
// have is refused), then runs the call as if it had arrived with its own
// name: through the interceptors, which see the method's name and its
// decoded arguments, and the at-most-once table. The reply travels back as
// JSON. WithJSONCodec(false) turns it off with the JSON-RPC codec.
const JSONCallMethod = "_semrpc.CallJSON"

// jsonCallArgs are the arguments of JSONCallMethod.
type jsonCallArgs struct {
	Method string // "Service.Method"
	Args   []byte // one JSON value of the method's argument type
}

// jsonCallReply is the answer of JSONCallMethod.
type jsonCallReply struct {
	Reply []byte // the method's reply, in JSON
}

var jsonCallMethodType = &methodType{
	name:      JSONCallMethod,
	argType:   reflect.TypeOf(jsonCallArgs{}),
	replyType: reflect.TypeOf(&jsonCallReply{}),
	hasCtx:    true, // the method it calls may read its metadata
}

// executeJSON runs the method a JSONCallMethod request names, with its
// arguments decoded from JSON, and returns its reply in JSON.
func (s *Server) executeJSON(ctx context.Context, h *semantics.Header, a *jsonCallArgs) (any, error) {
	m, err := s.lookup(a.Method)
	if err == nil && strings.HasPrefix(m.name, "_semrpc.") && m.builtin == nil {
		err = reject(CodeUnknownMethod, "rpc: %s cannot be called through %s", quoteName(a.Method), JSONCallMethod)
	}
	if err != nil {
		s.rejected.Add(1)
		return nil, err
	}
	ptr, pass := m.newArgs()
	if err := decodeStrictJSON(a.Args, ptr); err != nil {
		s.rejected.Add(1)
		return nil, reject(CodeBadArguments, "rpc: the JSON arguments of %s do not fit its argument type %s: %v", m.name, m.argType, err)
	}
	reply, err := s.execute(ctx, m, h, ptr, pass)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return nil, semantics.Unusable(fmt.Errorf("rpc: %s ran, but its reply has no JSON form: %v", m.name, err))
	}
	return &jsonCallReply{Reply: b}, nil
}

// decodeStrictJSON decodes data, one JSON value, into v, refusing fields
// that v's type does not have and anything after the value.
func decodeStrictJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value")
	}
	return nil
}

// CallJSON calls serviceMethod with its arguments given as one JSON value
// and returns its reply in JSON, through JSONCallMethod: the server decodes
// the arguments into the method's argument type, refusing any field the type
// does not have (ErrBadArguments, not executed). Everything else is as for
// Call: policies, metadata, deadlines, and the verdict of every error.
// Empty args mean {}.
func (c *Client) CallJSON(ctx context.Context, serviceMethod string, args json.RawMessage, opts ...Option) (json.RawMessage, error) {
	var r jsonCallReply
	if err := c.Call(ctx, JSONCallMethod, jsonCallArgs{Method: serviceMethod, Args: args}, &r, opts...); err != nil {
		return nil, namedJSONError(err, serviceMethod)
	}
	return json.RawMessage(r.Reply), nil
}

// jsonCallError is an error of CallJSON whose text names the method called
// where the client named JSONCallMethod, the method that carried it.
type jsonCallError struct {
	err    error
	method string
}

func (e *jsonCallError) Error() string {
	return strings.ReplaceAll(e.err.Error(), "rpc: "+JSONCallMethod+": ", "rpc: "+e.method+": ")
}

func (e *jsonCallError) Unwrap() error { return e.err }

// namedJSONError returns err, with its text naming method instead of
// JSONCallMethod if it names that.
func namedJSONError(err error, method string) error {
	if !strings.Contains(err.Error(), "rpc: "+JSONCallMethod+": ") {
		return err
	}
	return &jsonCallError{err: err, method: method}
}
