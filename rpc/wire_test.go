package rpc

import (
	"errors"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// Regression: DecodeError turned a response code it does not know (from a
// newer server, say, or a damaged peer) into a rejection, that is "the
// method did not run". Only the safe assumption fits an unknown answer:
// may have executed.
func TestReviewUnknownResponseCodeIsMaybeExecuted(t *testing.T) {
	for _, code := range []Code{CodeInterrupted + 1, CodeInterrupted + 2, 200, 255} {
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
