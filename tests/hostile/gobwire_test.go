//go:build linux

package hostile

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"strings"
	"testing"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// requestMirror mirrors rpc's requestMirror header (wireRequest, unexported there);
// gob matches fields by name.
type requestMirror struct {
	ServiceMethod string
	Seq           uint64
	Sem           *semantics.Header
	Timeout       int64
	Metadata      rpc.Metadata
}

// The hand-written streams must say exactly what the attacks mean: a
// well-formed one decodes, with encoding/gob, into the values written.
func TestWireWriterStreamsDecodeAsWritten(t *testing.T) {
	md := appendUint(nil, 2)
	md = appendString(md, "a")
	md = appendUint(md, 1)
	md = appendString(md, "x")
	md = appendString(md, "b")
	md = appendUint(md, 0)
	tags := appendUint(nil, 1)
	tags = appendString(tags, "t")
	tags = appendString(tags, "u")

	var stream []byte
	stream = append(stream, requestTypes()...)
	stream = append(stream, headerMessage(header{method: "Store.Get", seq: 7,
		sem: &semHeader{hi: 1, lo: 2, seq: 3, ack: 1, epoch: 9}, metadata: md})...)
	stream = append(stream, getArgsType()...)
	stream = append(stream, getBody("k")...)
	stream = append(stream, headerMessage(header{method: "Store.Put", seq: 300})...)
	stream = append(stream, putArgsTypes()...)
	stream = append(stream, putBody("k", []byte("value"), tags)...)
	stream = append(stream, headerMessage(header{method: "Store.Batch"})...)
	stream = append(stream, batchArgsTypes()...)
	stream = append(stream, batchBody([]string{"a", ""}, 2)...)
	stream = append(stream, headerMessage(header{method: "Store.Lookup"})...)
	stream = append(stream, pathType()...)
	stream = append(stream, pathBody(3)...)
	stream = append(stream, headerMessage(header{method: "Store.Depth"})...)
	stream = append(stream, treeTypes()...)
	stream = append(stream, treeBody(3)...)
	stream = append(stream, headerMessage(header{method: "_semrpc.Open"})...)
	stream = append(stream, openArgsType()...)
	stream = append(stream, openBody()...)

	dec := gob.NewDecoder(bytes.NewReader(stream))
	var h requestMirror
	decode := func(v any) {
		t.Helper()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("decoding %T: %v", v, err)
		}
	}
	decode(&h)
	want := requestMirror{ServiceMethod: "Store.Get", Seq: 7,
		Sem:      &semantics.Header{Client: semantics.ClientID{Hi: 1, Lo: 2}, Seq: 3, Ack: 1, Epoch: 9},
		Metadata: rpc.Metadata{"a": {"x"}, "b": nil}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("header: %+v, want %+v", h, want)
	}
	var get GetArgs
	decode(&get)
	if get.Key != "k" {
		t.Errorf("GetArgs: %+v", get)
	}
	h = requestMirror{}
	decode(&h)
	if h.ServiceMethod != "Store.Put" || h.Seq != 300 {
		t.Errorf("header: %+v", h)
	}
	var put PutArgs
	decode(&put)
	if put.Key != "k" || string(put.Value) != "value" || !reflect.DeepEqual(put.Tags, map[string]string{"t": "u"}) {
		t.Errorf("PutArgs: %+v", put)
	}
	decode(&h)
	var batch BatchArgs
	decode(&batch)
	if !reflect.DeepEqual(batch, BatchArgs{Keys: []string{"a", ""}, Rows: [][]string{nil, nil}}) {
		t.Errorf("BatchArgs: %#v", batch)
	}
	decode(&h)
	var path Path
	decode(&path)
	depth := 0
	for p := &path; p != nil; p = p.Child {
		depth++
	}
	if depth != 4 {
		t.Errorf("Path: depth %d, want 4", depth)
	}
	decode(&h)
	var tree Tree
	decode(&tree)
	depth = 0
	for tr := &tree; tr != nil; {
		depth++
		if len(tr.Kids) == 0 {
			break
		}
		tr = tr.Kids[0]
	}
	if depth != 4 {
		t.Errorf("Tree: depth %d, want 4", depth)
	}
	decode(&h)
	var open rpc.OpenArgs
	decode(&open)
	if open.Version != 2 {
		t.Errorf("OpenArgs: %+v", open)
	}
}

func TestGobIntegersAsDocumented(t *testing.T) {
	tests := []struct {
		u    uint64
		want []byte
	}{
		{0, []byte{0}},
		{7, []byte{7}},
		{127, []byte{127}},
		{128, []byte{0xff, 0x80}},
		{256, []byte{0xfe, 1, 0}},
		{1 << 62, []byte{0xf8, 0x40, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		if got := appendUint(nil, tt.u); !bytes.Equal(got, tt.want) {
			t.Errorf("appendUint(%d) = % x, want % x", tt.u, got, tt.want)
		}
	}
	if got, want := appendInt(nil, -129), []byte{0xfe, 1, 1}; !bytes.Equal(got, want) {
		t.Errorf("appendInt(-129) = % x, want % x", got, want)
	}
	if got, want := appendInt(nil, -65), []byte{0xff, 0x81}; !bytes.Equal(got, want) {
		t.Errorf("appendInt(-65) = % x, want % x", got, want)
	}
}

// The type names an attack puts on the wire reach the decoder as sent.
func TestTypeNameWithNewlineReachesTheDecoderError(t *testing.T) {
	name := "Evil\nFORGED"
	stream := append(defineStruct(idFirstCustom, name, wireField{"ServiceMethod", tInt}), valueOfInt(idFirstCustom, 7)...)
	var h requestMirror
	err := gob.NewDecoder(bytes.NewReader(stream)).Decode(&h)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("decoding: %v, want an error naming %q", err, name)
	}
}
