package gobcheck_test

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/semrpc/semrpc/internal/gobcheck"
)

func Example() {
	type Request struct {
		ServiceMethod string
		Seq           uint64
		Metadata      map[string][]string
	}
	var wire bytes.Buffer
	enc := gob.NewEncoder(&wire)
	enc.Encode(Request{ServiceMethod: "KV.Get", Seq: 1})
	enc.Encode(Request{ServiceMethod: "KV.Put", Seq: 2, Metadata: map[string][]string{"k": {"v"}}})

	// Each message is checked before a gob.Decoder sees it.
	s := gobcheck.NewStream(gobcheck.Limits{})
	msgs, _, _ := gobcheck.SplitMessages(wire.Bytes())
	for i, m := range msgs {
		fmt.Println("message", i, s.Check(m))
	}

	// A hostile request: the same, with the metadata map's count patched
	// to 10^7 entries (gob would allocate for them before reading one).
	bomb := bytes.Clone(msgs[len(msgs)-1])
	i := bytes.Index(bomb, []byte{0x01, 0x01, 0x01, 'k'}) // field Metadata, 1 entry, "k"
	bomb = append(append(bomb[:i+1:i+1], 0xfd, 0x98, 0x96, 0x80), bomb[i+2:]...)
	err := s.Check(bomb)
	fmt.Println(errors.Is(err, gobcheck.ErrMalformed), err)
	// Output:
	// message 0 <nil>
	// message 1 <nil>
	// message 2 <nil>
	// message 3 <nil>
	// message 4 <nil>
	// true gobcheck: malformed message: map count 10000000 exceeds the 6 bytes left
}
