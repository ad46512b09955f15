package kvcheck

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checker is only as good as its model: a history no order can explain
// must be rejected (with a visualisation), and one with an unknown outcome
// accepted either way.
func TestModelJudgesHistories(t *testing.T) {
	op := func(client int, in Input, out Output, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"sequential appends", []porcupine.Operation{
			op(0, Input{"append", "k", "a"}, Output{Value: ""}, 0, 1),
			op(1, Input{"append", "k", "b"}, Output{Value: "a"}, 2, 3),
			op(0, Input{"get", "k", ""}, Output{Value: "ab"}, 4, 5),
		}, porcupine.Ok},
		{"concurrent appends in either order", []porcupine.Operation{
			op(0, Input{"append", "k", "a"}, Output{Value: "b"}, 0, 10),
			op(1, Input{"append", "k", "b"}, Output{Value: ""}, 1, 9),
		}, porcupine.Ok},
		{"append sees a value never written", []porcupine.Operation{
			op(0, Input{"append", "k", "a"}, Output{Value: ""}, 0, 1),
			op(1, Input{"append", "k", "b"}, Output{Value: "x"}, 2, 3),
		}, porcupine.Illegal},
		{"get misses a completed put", []porcupine.Operation{
			op(0, Input{"put", "k", "v"}, Output{}, 0, 1),
			op(1, Input{"get", "k", ""}, Output{Value: ""}, 2, 3),
		}, porcupine.Illegal},
		{"unknown append, applied", []porcupine.Operation{
			op(0, Input{"append", "k", "a"}, Output{Unknown: true}, 0, math.MaxInt64),
			op(1, Input{"get", "k", ""}, Output{Value: "a"}, 2, 3),
		}, porcupine.Ok},
		{"unknown append, not applied", []porcupine.Operation{
			op(0, Input{"append", "k", "a"}, Output{Unknown: true}, 0, math.MaxInt64),
			op(1, Input{"get", "k", ""}, Output{Value: ""}, 2, 3),
		}, porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, vis, err := Check(tt.ops, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if (vis != "") != (got == porcupine.Illegal) {
				t.Errorf("visualisation %q for result %v", vis, got)
			}
			if vis != "" {
				os.Remove(vis)
			}
		})
	}
}
