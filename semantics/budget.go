package semantics

import (
	"math"
	"sync/atomic"
)

// Defaults of NewBudget, those of gRPC's retry throttling.
const (
	DefaultBudgetTokens = 10
	DefaultBudgetRatio  = 0.1
)

// milli is the budget's fixed-point scale: tokens are counted in
// thousandths, so a bucket is one atomic integer.
const milli = 1000

// Budget throttles retries when a server is failing, as gRPC's retry
// throttling does: a token bucket that a failed attempt drains by one token
// and a successful attempt refills by a fraction of one. Retries are allowed
// only while more than half of the bucket is left, so a server that fails
// most calls soon sees first attempts only, instead of a storm of retries.
//
// Share one Budget among all calls to one server (one Runner per client).
// A Budget is safe for concurrent use.
type Budget struct {
	max    int64 // bucket size, in thousandths of a token
	ratio  int64 // refill per success, in thousandths of a token
	tokens atomic.Int64
}

// NewBudget returns a full bucket of maxTokens tokens that each success
// refills by tokenRatio tokens. Values are kept to three decimals; maxTokens
// or tokenRatio that is not positive takes the default (10 and 0.1).
func NewBudget(maxTokens, tokenRatio float64) *Budget {
	if !(maxTokens > 0) || math.IsInf(maxTokens, 0) {
		maxTokens = DefaultBudgetTokens
	}
	if !(tokenRatio > 0) || math.IsInf(tokenRatio, 0) {
		tokenRatio = DefaultBudgetRatio
	}
	b := &Budget{
		max:   max(int64(math.Round(maxTokens*milli)), 1),
		ratio: max(int64(math.Round(tokenRatio*milli)), 1),
	}
	b.tokens.Store(b.max)
	return b
}

// Tokens returns the tokens left in the bucket.
func (b *Budget) Tokens() float64 { return float64(b.tokens.Load()) / milli }

// MaxTokens returns the size of the bucket.
func (b *Budget) MaxTokens() float64 { return float64(b.max) / milli }

// AllowRetry reports whether a retry may start now: more than half of the
// bucket is left.
func (b *Budget) AllowRetry() bool { return 2*b.tokens.Load() > b.max }

// Failure records a failed attempt (not sent or maybe executed): one token
// less, never below zero.
func (b *Budget) Failure() { b.add(-milli) }

// Success records an attempt that the server answered: tokenRatio tokens
// more, never above the bucket size.
func (b *Budget) Success() { b.add(b.ratio) }

func (b *Budget) add(delta int64) {
	for {
		old := b.tokens.Load()
		n := min(max(old+delta, 0), b.max)
		if n == old || b.tokens.CompareAndSwap(old, n) {
			return
		}
	}
}
