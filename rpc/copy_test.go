package rpc

import (
	"bytes"
	"encoding/gob"
)

// copyValue copies src into the pointer dst through gob, as a wire would.
func copyValue(dst, src any) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(src); err != nil {
		return err
	}
	return gob.NewDecoder(&buf).Decode(dst)
}
