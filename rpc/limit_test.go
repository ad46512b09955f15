package rpc

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/semrpc/semrpc/internal/gobcheck"
)

// manyTypes encodes one value of each of n distinct struct types.
func manyTypes(t *testing.T, n int) []byte {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for i := 0; i < n; i++ {
		typ := reflect.StructOf([]reflect.StructField{{Name: fmt.Sprintf("Field%d", i), Type: reflect.TypeOf(0)}})
		v := reflect.New(typ).Elem()
		v.Field(0).SetInt(int64(i + 1))
		if err := enc.EncodeValue(v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestMessageCheckBoundsTypeDefinitions(t *testing.T) {
	stream := manyTypes(t, 200)
	tests := []struct {
		name     string
		maxTypes int
		wantErr  error
	}{
		{"within the bound", 1024, nil},
		{"beyond the bound", 100, ErrTooManyTypes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMsgReader(bytes.NewReader(stream), DefaultMaxMessageSize, gobcheck.NewStream(gobcheck.Limits{MaxTypes: tt.maxTypes}))
			dec := gob.NewDecoder(m)
			var err error
			for err == nil {
				var v any = new(struct{})
				err = dec.Decode(v)
			}
			if tt.wantErr == nil && !errors.Is(err, io.EOF) {
				t.Fatalf("decoding a legitimate stream: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// Many values of one type define it once: the bound does not bite.
func TestMessageCheckOneTypeManyValues(t *testing.T) {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for i := 0; i < 5000; i++ {
		if err := enc.Encode(Args{i, i}); err != nil {
			t.Fatal(err)
		}
	}
	m := newMsgReader(bytes.NewReader(buf.Bytes()), DefaultMaxMessageSize, gobcheck.NewStream(gobcheck.Limits{MaxTypes: 2}))
	dec := gob.NewDecoder(m)
	for i := 0; i < 5000; i++ {
		var a Args
		if err := dec.Decode(&a); err != nil || a.A != i {
			t.Fatalf("value %d: %+v, %v", i, a, err)
		}
	}
}
