// Package gobcheck validates gob messages before encoding/gob decodes them.
//
// gob's Decoder allocates from the counts a sender declares, before it
// reads what they count: a map that declares 10^7 entries is made with
// room for them (765 MiB for a map[string]int) from a message of a few
// bytes; a slice gets up to about 10 MB per declared length; a value of a
// recursive type nested deep enough exhausts the stack; and a stream may
// define as many types, as large, as it likes. A Stream follows one
// direction of a gob stream and checks each whole message (its body, after
// the length prefix) before it is handed to the Decoder; on an error the
// connection is to be closed.
//
// # What is checked
//
// A type definition is decoded into the Stream's own table: its id must be
// one an Encoder would use (64 to 2^31-1; gob's Decoder refuses lower ones
// and truncates higher ones), new on the stream, and it must define one
// kind of type whose element, key and field types are type ids (defined
// later, perhaps: recursive types need that). Definitions count against
// Limits.MaxTypes and Limits.MaxTypeBytes.
//
// A value is walked against its wire type, once, iteratively. Every count
// must be one the bytes that follow can hold, since every element takes at
// least one byte (a map entry two): slice, array and map counts (an array's
// must be its type's length), string, []byte, interface name and
// GobEncoder, BinaryMarshaler and TextMarshaler payload lengths, and the
// byte count before an interface's value, which must be exact. Integers
// are at most 8 bytes; struct field numbers stay within the struct; every
// type a value reaches must be defined; nesting (structs, slices, arrays,
// maps, interfaces) stays within Limits.MaxDepth; after the value, the
// message ends. A huge count fails at once, not after walking.
//
// # Values over several messages
//
// The first time an interface value holds a type the stream has not
// defined, an Encoder sends the value so far and the definition as one
// message, each further definition as a message of its own, and the rest
// of the value in the next message. Check accepts each such message and
// reports the value unfinished with Stream.Pending. The counts in such a
// value are bounded only by the messages that complete it: a caller must
// hand a pending message to gob's Decoder only together with the messages
// that follow it, up to the one after which Pending is false.
//
// # Where gob's Decoder reads differently
//
// Checking the bytes as an Encoder meant them is not enough where gob's
// Decoder reads them otherwise, and it does in two places, both reachable
// from a hostile peer and both refused here:
//
//   - Inside an interface value, an Encoder writes a type definition for a
//     nested interface's value in the middle of the outer value, in chunks
//     with their own byte counts, and the outer byte count then ends at
//     the definition. gob's Decoder reads that right when it decodes the
//     outer value, and wrong when it skips it (a field the receiving
//     struct lacks; a body decoded into nil, as net/rpc does for an
//     unknown method): it resumes in the middle of the value, and a peer
//     can make those bytes, so read, declare any count (a 182-byte stream
//     made gob allocate 14 MB in a test, and the count is unbounded); an
//     Encoder's own stream of this shape leaves the Decoder's types
//     inconsistent, after which it panics on later values. So Check
//     refuses such a nested definition unless Limits.AllowNestedTypeDefs
//     is set: the one thing an Encoder sends that is refused by default.
//     A definition in an interface that is not in another interface's
//     value (at the top of a message's value, in its structs, slices and
//     maps) is fine, and so is a nested interface of a type sent before.
//
//   - When gob's Decoder fails on a value (an interface name the receiver
//     never registered, say) it drops the rest of that message and reads
//     the next one as a new message. If the message ended with a type
//     definition for an interface's value, the next one is the rest of
//     that value, which gob then reads as a new value of the interface's
//     concrete type. That type is incomplete for gob, and the read fails
//     harmlessly, only if it needs the dropped definition: so the
//     definitions before an interface's value must all be of types its
//     concrete type reaches, as an Encoder sends them.
//
// # Limits
//
// Limits bounds what one stream may make a decoder hold; zero fields mean
// the defaults: MaxDepth 100 nesting levels, MaxTypes 1024 definitions,
// MaxTypeBytes 256 KiB, the memory the definitions are estimated to make
// a Decoder hold (a fixed 256 bytes per type and 64 per struct field, plus
// their names). A list 500 long is 500 levels deep: streams of deep values
// need a larger MaxDepth.
//
// Besides nested definitions and values beyond the limits, Check refuses
// nothing an Encoder sends that gob's Decoder reads: values of
// gob.CommonType, whose definition an Encoder sends under a reserved id,
// are refused by gob's Decoder too.
//
// # Provenance
//
// This package is written from gob's published description of its wire
// format (the documentation of encoding/gob) and from experiments with
// its Encoder and Decoder; it contains no code from encoding/gob.
//
// Error texts quote (and cut short) anything taken from a message. A
// Stream is for one goroutine.
package gobcheck
