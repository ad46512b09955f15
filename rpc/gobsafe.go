package rpc

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"sync"
)

// Encoding a message whole before writing it lets one bad value fail alone:
// after a failed Encode, what gob wrote is whole type-definition messages,
// which must still reach the peer (gob now counts them as sent), and the
// partial value is dropped. That holds for types without interfaces. An
// interface value's concrete type is defined in the middle of the value,
// so a failure there can leave a fragment of a value among the
// definitions. Values of such types are therefore first encoded on a
// throwaway encoder: only if that works, and fits the size limit, are they
// encoded on the stream.

var interfaceTypes sync.Map // reflect.Type -> bool

// hasInterface reports whether values of type t may carry an interface.
func hasInterface(t reflect.Type) bool {
	if v, ok := interfaceTypes.Load(t); ok {
		return v.(bool)
	}
	has := walkInterface(t, make(map[reflect.Type]bool))
	interfaceTypes.Store(t, has)
	return has
}

func walkInterface(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if t.Implements(gobEncoderType) || reflect.PointerTo(t).Implements(gobEncoderType) {
		return false // encoded as opaque bytes
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return walkInterface(t.Elem(), seen)
	case reflect.Map:
		return walkInterface(t.Key(), seen) || walkInterface(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() && walkInterface(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

var gobEncoderType = reflect.TypeOf((*gob.GobEncoder)(nil)).Elem()

// trialEncode encodes v on a throwaway encoder and returns the size of the
// result (type definitions included), or the error the real encoding would
// meet.
func trialEncode(v any) (int, error) {
	var b bytes.Buffer
	if err := encodeValue(gob.NewEncoder(&b), v); err != nil {
		return 0, err
	}
	return b.Len(), nil
}

// needsTrial reports whether v must be tried on a throwaway encoder first.
func needsTrial(v any) bool {
	return v != nil && hasInterface(reflect.TypeOf(v))
}
