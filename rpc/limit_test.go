package rpc

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
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

func TestFrameLimiterBoundsTypeDefinitions(t *testing.T) {
	stream := manyTypes(t, 200)
	tests := []struct {
		name     string
		maxTypes uint64
		wantErr  error
	}{
		{"within the bound", 1 << 20, nil},
		{"beyond the bound", 2000, ErrTooManyTypes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFrameLimiter(bytes.NewReader(stream), DefaultMaxMessageSize)
			l.maxTypes = tt.maxTypes
			dec := gob.NewDecoder(l)
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
func TestFrameLimiterOneTypeManyValues(t *testing.T) {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for i := 0; i < 5000; i++ {
		if err := enc.Encode(Args{i, i}); err != nil {
			t.Fatal(err)
		}
	}
	l := newFrameLimiter(bytes.NewReader(buf.Bytes()), DefaultMaxMessageSize)
	l.maxTypes = 200
	dec := gob.NewDecoder(l)
	for i := 0; i < 5000; i++ {
		var a Args
		if err := dec.Decode(&a); err != nil || a.A != i {
			t.Fatalf("value %d: %+v, %v", i, a, err)
		}
	}
}
