// Package labgob is this toy lab's encoder: gob, with the lab's API.
package labgob

import (
	"encoding/gob"
	"io"
)

// LabEncoder encodes values.
type LabEncoder struct{ gob *gob.Encoder }

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *LabEncoder { return &LabEncoder{gob.NewEncoder(w)} }

// Encode encodes e.
func (enc *LabEncoder) Encode(e interface{}) error { return enc.gob.Encode(e) }

// LabDecoder decodes values.
type LabDecoder struct{ gob *gob.Decoder }

// NewDecoder returns a decoder reading r.
func NewDecoder(r io.Reader) *LabDecoder { return &LabDecoder{gob.NewDecoder(r)} }

// Decode decodes into e.
func (dec *LabDecoder) Decode(e interface{}) error { return dec.gob.Decode(e) }

// Register records a type sent inside interfaces.
func Register(value interface{}) { gob.Register(value) }
