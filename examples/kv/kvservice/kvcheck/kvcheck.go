// Package kvcheck checks histories of the KV service for linearizability
// with porcupine: one model, shared by every suite that exercises the
// service (tests/ and examples/kv's crash test).
package kvcheck

import (
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

// Input is one call as porcupine sees it.
type Input struct {
	Op    string // "get", "put" or "append"
	Key   string
	Value string // put's and append's argument
}

// Output is one call's result.
type Output struct {
	Value   string // get's value, append's old value
	Unknown bool   // the call may or may not have taken effect
}

// Model is a string register per key where Append returns the value it
// replaced. Histories are partitioned by key. An operation whose outcome
// is unknown may take effect at any point after its call, or never: give
// it an infinite return time (math.MaxInt64) and it can be linearized last.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		parts := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(string), input.(Input), output.(Output)
		switch in.Op {
		case "get":
			return out.Unknown || out.Value == s, s
		case "put":
			return true, in.Value
		default: // append
			return out.Unknown || out.Value == s, s + in.Value
		}
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(Input), output.(Output)
		res := fmt.Sprintf("%q", out.Value)
		if out.Unknown {
			res = "unknown"
		}
		switch in.Op {
		case "get":
			return fmt.Sprintf("get(%s) → %s", in.Key, res)
		case "put":
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("append(%s, %q) → %s", in.Key, in.Value, res)
	},
}

// Check checks history against Model for at most timeout. When the
// history is not linearizable it writes porcupine's HTML visualisation to
// a new file in the temporary directory and returns its path.
func Check(history []porcupine.Operation, timeout time.Duration) (res porcupine.CheckResult, visualisation string, err error) {
	res, info := porcupine.CheckOperationsVerbose(Model, history, timeout)
	if res != porcupine.Illegal {
		return res, "", nil
	}
	f, err := os.CreateTemp("", "semrpc-linearizability-*.html")
	if err != nil {
		return res, "", err
	}
	defer f.Close()
	if err := porcupine.Visualize(Model, info, f); err != nil {
		return res, "", err
	}
	return res, f.Name(), nil
}
