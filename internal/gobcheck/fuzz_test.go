package gobcheck

import (
	"bytes"
	"encoding/gob"
	"errors"
	"io"
	"runtime"
	"testing"
)

// frameAll puts length prefixes before messages, making a stream.
func frameAll(msgs [][]byte) []byte {
	var w wb
	for _, m := range msgs {
		w = w.u(uint64(len(m))).raw(m...)
	}
	return w
}

// fuzzTargets are what an accepted stream is decoded into: each returns a
// fresh pointer to decode into (nil: discard, as net/rpc does with the body
// of a call it cannot serve).
var fuzzTargets = []func() any{
	func() any { return nil },
	func() any { return new(any) },
	func() any { return new(map[string][]string) },
	func() any { return new([]string) },
	func() any { return new(RequestMeta) },
	func() any { return new(Holder) },
	func() any { return new(Node) },
	func() any { return new(Maps) },
	func() any { return new(Basic) },
}

// checkAll reports whether a Stream with limits l accepts all of data, a
// stream of whole messages, ending outside a value.
func checkAll(l Limits, data []byte) (bodies int, ok bool) {
	msgs, rest, err := SplitMessages(data)
	if err != nil || len(rest) != 0 || len(msgs) == 0 {
		return 0, false
	}
	s := NewStream(l)
	for _, b := range msgs {
		if s.Check(b) != nil {
			return 0, false
		}
	}
	return len(msgs), !s.Pending()
}

// FuzzCheck checks that Check never panics, and that a stream it accepts
// whole (with the default limits) neither makes gob's Decoder panic nor
// allocate more than 64 bytes per byte of input (plus 1 MiB), whatever it
// is decoded into, errors and all (a net/rpc server reads on after a
// body's error). With AllowNestedTypeDefs gob's Decoder can misread an
// accepted stream when it skips an interface value, and then allocate or
// panic (see TestNestedSkipMisread, TestGobPanicsOnNestedSkip): only Check
// itself is fuzzed that way.
func FuzzCheck(f *testing.F) {
	// Each input is also read as one value message after a stream that
	// defines these values' types, so that mutations of a value's body
	// alone are checked against types: seeds for that are their bodies.
	prefixValues := []any{
		Holder{X: Inner{}, Y: []int{1}}, RequestMeta{Metadata: map[string][]string{"k": {"v"}}, Deadline: &Deadline{}},
		map[string][]string{"a": {"b"}}, []string{"s"}, Maps{N: map[Inner][]int{{}: {1}}}, Node{Kids: []*Node{{}}},
		Basic{S: "x"}, Marshalers{G: GobEnc{v: []byte{1}}}, Arrays{}, HolderS{Xs: []any{Named("n")}},
	}
	prefix := encodeStream(f, prefixValues...)
	bodies, _, _ := SplitMessages(prefix)
	for _, b := range bodies {
		f.Add(bytes.Clone(b))
	}
	for _, v := range roundTripValues() {
		f.Add(encodeStream(f, v))
	}
	f.Add(encodeStream(f, roundTripValues()...))
	f.Add(encodeStream(f, Holder{X: Holder{X: []any{Holder{X: Inner{}}, map[string]any{"m": Maps{}}}}}))
	f.Add(frameAll(nested(0, 0)))
	for _, tc := range rejectCases(f) {
		if len(tc.msgs) < 50 {
			f.Add(frameAll(tc.msgs))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, stream := range [][]byte{data, append(bytes.Clone(prefix), frameAll([][]byte{data})...)} {
			checkAll(Limits{AllowNestedTypeDefs: true}, stream)
			n, ok := checkAll(Limits{}, stream)
			if !ok {
				continue
			}
			limit := 64*uint64(len(stream)) + 1<<20
			var before, after runtime.MemStats
			for _, target := range fuzzTargets {
				runtime.ReadMemStats(&before)
				dec := gob.NewDecoder(bytes.NewReader(stream))
				for range n + 1 {
					if err := dec.Decode(target()); errors.Is(err, io.EOF) {
						break
					}
				}
				runtime.ReadMemStats(&after)
				if n := after.TotalAlloc - before.TotalAlloc; n > limit {
					t.Fatalf("decoding %d accepted bytes into %T allocated %d bytes", len(stream), target(), n)
				}
			}
		}
	})
}

// TestGobPanicsOnNestedSkip records one reason AllowNestedTypeDefs is off
// by default: an Encoder's stream that gob's Decoder, discarding the
// values as net/rpc discards the body of a call to an unknown method,
// misreads and then panics on. By default Check refuses the first value.
func TestGobPanicsOnNestedSkip(t *testing.T) {
	stream := encodeStream(t, Holder{X: map[string]any{"d": GobEnc{v: []byte("g")}}}, GobEnc{}, GobEnc{})
	if err := checkStream(Limits{AllowNestedTypeDefs: true}, stream); err != nil {
		t.Fatalf("AllowNestedTypeDefs: %v", err)
	}
	if err := checkStream(Limits{}, stream); !isNested(err) {
		t.Fatalf("default limits: %v", err)
	}
	panicked := func() (p any) {
		defer func() { p = recover() }()
		dec := gob.NewDecoder(bytes.NewReader(stream))
		var discard any // nil: Decode discards
		for range 3 {
			dec.Decode(discard)
		}
		return nil
	}()
	if panicked == nil {
		t.Logf("gob's Decoder no longer panics on this stream")
	} else {
		t.Logf("gob's Decoder panics: %v", panicked)
	}
}
