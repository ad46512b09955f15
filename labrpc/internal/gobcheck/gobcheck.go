// Package gobcheck holds the lab-style gob checks shared by labgob and
// labrpc: a warning for struct fields gob will not send (their names start
// with a lower-case letter) and one for decoding into a value that is not
// the zero value. Each distinct warning is logged once per process; a
// handler may see every occurrence, and strict mode turns them into errors.
package gobcheck

import (
	"encoding"
	"encoding/gob"
	"errors"
	"fmt"
	"log"
	"reflect"
	"sync"
	"sync/atomic"
)

// ErrWarning is wrapped by the errors returned in strict mode.
var ErrWarning = errors.New("labgob: warning treated as an error (strict mode)")

var (
	strict atomic.Bool

	mu      sync.Mutex // protects following
	printed = make(map[string]bool)
	handler func(msg string)

	checked sync.Map // reflect.Type → []string, the type's lower-case-field warnings
)

// SetStrict turns strict mode on or off.
func SetStrict(on bool) { strict.Store(on) }

// SetHandler installs f to be called with every warning (nil removes it).
func SetHandler(f func(msg string)) {
	mu.Lock()
	handler = f
	mu.Unlock()
}

// report logs msg the first time it is seen, hands it to the handler, and
// returns an error in strict mode.
func report(msg string) error {
	mu.Lock()
	first := !printed[msg]
	printed[msg] = true
	h := handler
	mu.Unlock()
	if first {
		log.Print(msg)
	}
	if h != nil {
		h(msg)
	}
	if strict.Load() {
		return fmt.Errorf("%w: %s", ErrWarning, msg)
	}
	return nil
}

// CheckValue checks the type of v for fields gob would silently skip.
func CheckValue(v any) error {
	if v == nil {
		return nil
	}
	return CheckType(reflect.TypeOf(v))
}

// CheckType checks t, and every type reachable from it, for exported-looking
// struct fields that gob will not send. Results are cached per type, so the
// common case is one map lookup.
func CheckType(t reflect.Type) error {
	var warns []string
	if w, ok := checked.Load(t); ok {
		warns = w.([]string)
	} else {
		walkType(t, make(map[reflect.Type]bool), &warns)
		checked.Store(t, warns)
	}
	var first error
	for _, msg := range warns {
		if err := report(msg); err != nil && first == nil {
			first = err
		}
	}
	return first
}

var (
	gobEncoderType    = reflect.TypeOf((*gob.GobEncoder)(nil)).Elem()
	binaryMarshalType = reflect.TypeOf((*encoding.BinaryMarshaler)(nil)).Elem()
)

// customEncoded reports whether gob hands t to its own marshaller, in which
// case its fields do not matter.
func customEncoded(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(gobEncoderType) || pt.Implements(gobEncoderType) ||
		t.Implements(binaryMarshalType) || pt.Implements(binaryMarshalType)
}

func walkType(t reflect.Type, seen map[reflect.Type]bool, warns *[]string) {
	if seen[t] {
		return
	}
	seen[t] = true
	if customEncoded(t) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				*warns = append(*warns, fmt.Sprintf(
					"labgob warning: field %s of type %s starts with a lower-case letter, so it won't be sent (gob skips unexported fields)",
					f.Name, t))
				continue
			}
			walkType(f.Type, seen, warns)
		}
	case reflect.Pointer, reflect.Slice, reflect.Array:
		walkType(t.Elem(), seen, warns)
	case reflect.Map:
		walkType(t.Key(), seen, warns)
		walkType(t.Elem(), seen, warns)
	}
}

// CheckDefault warns when v, the target of a decode, already holds a
// non-zero value where the classic labgob looked: gob leaves alone every
// field the sender did not transmit (zero fields are never transmitted), so
// old values would survive. As in the classic labgob, only booleans,
// numbers and strings count, found through structs and non-nil pointers
// within three levels of v (v itself, usually a pointer, is the first);
// slices, maps, arrays and interfaces never warn, so restoring Raft state
// into a fresh struct whose log slice is non-nil does not.
func CheckDefault(v any) error {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	name := rv.Type()
	for name.Kind() == reflect.Pointer {
		name = name.Elem()
	}
	if suffix, ok := nonDefault(rv, 1); ok {
		path := name.String() + suffix
		return report(fmt.Sprintf(
			"labgob warning: decoding into a non-default value (%s is not zero); gob keeps fields the sender left at zero, so this may not work",
			path))
	}
	return nil
}

// maxDefaultDepth is how deep CheckDefault looks, as the classic labgob.
const maxDefaultDepth = 3

// nonDefault returns the path, below v, of the first part of v at depth
// depth that CheckDefault warns about (".Field.Sub", "" for v itself). The
// path is built only once something is found: the common case, a zero
// reply, allocates nothing.
func nonDefault(v reflect.Value, depth int) (string, bool) {
	if depth > maxDefaultDepth {
		return "", false
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue // gob never decodes into it
			}
			if p, ok := nonDefault(v.Field(i), depth+1); ok {
				return "." + t.Field(i).Name + p, true
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return nonDefault(v.Elem(), depth+1)
		}
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		if !v.IsZero() {
			return "", true
		}
	}
	return "", false
}
