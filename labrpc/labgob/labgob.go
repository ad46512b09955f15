// Package labgob is encoding/gob with the checks the classic lab network's
// labgob made: it warns about struct fields whose names start with a
// lower-case letter (gob won't send them, so a Raft term or log silently
// arrives as zero) and about decoding into a variable that is not the zero
// value (gob leaves fields the sender did not transmit alone, so stale values
// may survive the decode). The second warning looks where the classic one
// did: at booleans, numbers and strings, through structs and non-nil
// pointers, at most three levels deep counting the decode's target; a
// non-nil slice or map (an empty Raft log), an interface or a deeper field
// never warns. The API is the classic one: NewEncoder, NewDecoder, Encode,
// EncodeValue, Decode, Register, RegisterName.
//
// Each distinct warning is logged once per process. Two additions make the
// warnings enforceable in tests:
//
//   - OnWarning(f) calls f with every warning (every occurrence, not only the
//     first), e.g. to fail a test: labgob.OnWarning(func(m string) { t.Error(m) }).
//   - Strict(true) makes Encode, EncodeValue and Decode return an error
//     wrapping ErrWarning instead of going on; labrpc's Call then returns
//     false. Register cannot fail and only reports.
//
// Both settings are process-wide.
package labgob

import (
	"encoding/gob"
	"io"
	"reflect"

	"github.com/semrpc/semrpc/labrpc/internal/gobcheck"
)

// ErrWarning is wrapped by the errors returned in strict mode.
var ErrWarning = gobcheck.ErrWarning

// Strict turns strict mode on or off. In strict mode a warning makes Encode,
// EncodeValue or Decode return an error wrapping ErrWarning, and the value is
// not encoded or decoded.
func Strict(on bool) { gobcheck.SetStrict(on) }

// OnWarning installs f to be called with the text of every warning, each
// time it occurs, in addition to the once-per-process log line. A nil f
// removes the handler.
func OnWarning(f func(msg string)) { gobcheck.SetHandler(f) }

// LabEncoder is a gob.Encoder that checks the types it encodes.
type LabEncoder struct {
	gob *gob.Encoder
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *LabEncoder {
	return &LabEncoder{gob: gob.NewEncoder(w)}
}

// Encode checks e's type for fields gob would skip, then encodes e.
func (enc *LabEncoder) Encode(e interface{}) error {
	if err := gobcheck.CheckValue(e); err != nil {
		return err
	}
	return enc.gob.Encode(e)
}

// EncodeValue is Encode for a reflect.Value.
func (enc *LabEncoder) EncodeValue(value reflect.Value) error {
	if value.IsValid() {
		if err := gobcheck.CheckType(value.Type()); err != nil {
			return err
		}
	}
	return enc.gob.EncodeValue(value)
}

// LabDecoder is a gob.Decoder that checks the values it decodes into.
type LabDecoder struct {
	gob *gob.Decoder
}

// NewDecoder returns a decoder reading from r.
func NewDecoder(r io.Reader) *LabDecoder {
	return &LabDecoder{gob: gob.NewDecoder(r)}
}

// Decode checks e's type for fields gob would skip and e itself for
// non-zero contents, then decodes the next value into e.
func (dec *LabDecoder) Decode(e interface{}) error {
	if err := gobcheck.CheckValue(e); err != nil {
		return err
	}
	if err := gobcheck.CheckDefault(e); err != nil {
		return err
	}
	return dec.gob.Decode(e)
}

// Register records a concrete type for values sent inside interfaces, like
// gob.Register, after checking it.
func Register(value interface{}) {
	_ = gobcheck.CheckValue(value)
	gob.Register(value)
}

// RegisterName is like Register but uses name for the type.
func RegisterName(name string, value interface{}) {
	_ = gobcheck.CheckValue(value)
	gob.RegisterName(name, value)
}
