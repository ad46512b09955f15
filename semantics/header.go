package semantics

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// ClientID names one at-most-once session. It is drawn from crypto/rand, so
// another client cannot guess it and collide with its table entry.
type ClientID struct {
	Hi, Lo uint64
}

// NewClientID returns a fresh random, non-zero client id.
func NewClientID() ClientID {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			// crypto/rand.Read does not fail on supported platforms.
			panic("semantics: crypto/rand: " + err.Error())
		}
		id := ClientID{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}
		if !id.IsZero() {
			return id
		}
	}
}

// IsZero reports whether id is the zero id, which no session uses.
func (id ClientID) IsZero() bool { return id.Hi == 0 && id.Lo == 0 }

// String returns the id as 32 hex digits.
func (id ClientID) String() string { return fmt.Sprintf("%016x%016x", id.Hi, id.Lo) }

// Header travels with every attempt of an at-most-once or exactly-once call.
// Retries of one call carry the same Client and Seq; Ack only grows.
type Header struct {
	// Client is the session's id.
	Client ClientID
	// Seq numbers the call within the session, from 1.
	Seq uint64
	// Ack is the client's first incomplete sequence number: every call with
	// a smaller Seq has completed at the client and its reply may be freed.
	Ack uint64
	// Epoch is the server epoch the session was opened against. A server
	// that lost its table has a new epoch and refuses the session.
	Epoch uint64
}

// Valid reports whether h is well formed: a non-zero client, Seq ≥ 1 and
// Ack ≤ Seq (a call is never acknowledged before it completes).
func (h Header) Valid() bool {
	return !h.Client.IsZero() && h.Seq >= 1 && h.Ack >= 1 && h.Ack <= h.Seq
}

// String formats h for logs and traces.
func (h Header) String() string {
	return fmt.Sprintf("client=%s seq=%d ack=%d epoch=%x", h.Client, h.Seq, h.Ack, h.Epoch)
}
