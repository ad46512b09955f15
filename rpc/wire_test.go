package rpc

import (
	"errors"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// A response code the client does not know (from a newer server, say, or
// a damaged peer) decodes as may-have-executed, never as a rejection ("the
// method did not run"): only the safe assumption fits an unknown answer.
func TestUnknownResponseCodeDecodesAsMaybeExecuted(t *testing.T) {
	for _, code := range []Code{CodeBadArguments + 1, CodeBadArguments + 2, 200, 255} {
		err := DecodeError(code, "something the client cannot read")
		if err == nil {
			t.Fatalf("code %d: nil error", code)
		}
		if got := semantics.ClassOf(err); got != semantics.ClassMaybeExecuted {
			t.Errorf("code %d decodes as %v (%v); an unknown code must not claim the method did not run", code, got, err)
		}
		if errors.Is(err, ErrRejected) {
			t.Errorf("code %d decodes as a rejection: %v", code, err)
		}
	}
}
