package semantics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// RetryBudget decides whether a failed attempt may be retried. A Runner
// calls Record after every attempt of every policy and TryRetry before every
// at-least-once retry that would be charged (see Runner.Budget). One budget
// is shared by all the calls of a client, so implementations must be safe
// for concurrent use.
type RetryBudget interface {
	// Record notes one attempt's outcome; first is true for a call's first attempt.
	Record(first bool, class Class)
	// TryRetry asks to spend one retry now; false refuses it.
	TryRetry() bool
}

var (
	_ RetryBudget = (*Budget)(nil)
	_ RetryBudget = (*TokenBucket)(nil)
)

// Defaults of NewBudget, those of Finagle's RetryBudget.
const (
	// DefaultBudgetPercent is the share of calls that may be retried on top
	// of the reserve: 0.2 allows one retry per five calls.
	DefaultBudgetPercent = 0.2
	// DefaultBudgetTTL is how long a call's deposit and a retry's
	// withdrawal count.
	DefaultBudgetTTL = 10 * time.Second
	// DefaultBudgetMinRetriesPerSec is the reserve: retries allowed per
	// second of the TTL whatever the traffic, so a client that makes few
	// calls can still retry them.
	DefaultBudgetMinRetriesPerSec = 10.0
)

// budgetSlots is how many slots the TTL window is cut into.
const budgetSlots = 10

// Budget is a retry budget after Finagle's RetryBudget, the default of
// every client. Each call deposits when it starts (its first attempt); each
// retry it allows withdraws one. A retry is allowed while
//
//	minRetriesPerSec·ttl + percent·deposits − withdrawals ≥ 1
//
// where deposits and withdrawals are those of the last ttl. So retries may
// add about percent to the calls a server sees, plus a small reserve for
// clients that make few calls. A lossy link still gets its retries (they are
// a small share of the calls), while a dead server sees little more than
// the calls themselves. The outcome of an attempt does not matter: only
// first attempts deposit, only TryRetry withdraws.
//
// The window is kept in ten slots of ttl/10, so a deposit or withdrawal
// counts for between 0.9·ttl and ttl. A Budget is safe for concurrent use
// (one small mutex, held for a few additions); a nil *Budget allows every
// retry.
type Budget struct {
	percent float64 // retries allowed per deposit
	reserve float64 // minRetriesPerSec × ttl in seconds
	slot    time.Duration

	mu    sync.Mutex // protects the following
	now   func() time.Time
	start time.Time
	slots [budgetSlots]budgetSlot
}

// budgetSlot holds the deposits and withdrawals of one slot of the window.
type budgetSlot struct {
	index       int64 // which slot since start this is; stale when too old
	deposits    int64
	withdrawals int64
}

// NewBudget returns a budget that lets retries reach percent of the calls
// made over the last ttl, plus minRetriesPerSec·ttl retries in reserve. An
// argument that is not positive and finite takes its default
// (DefaultBudgetPercent, DefaultBudgetTTL, DefaultBudgetMinRetriesPerSec).
// The budget reads time.Now; see SetClock.
func NewBudget(percent float64, ttl time.Duration, minRetriesPerSec float64) *Budget {
	if !positive(percent) {
		percent = DefaultBudgetPercent
	}
	if ttl <= 0 {
		ttl = DefaultBudgetTTL
	}
	if !positive(minRetriesPerSec) {
		minRetriesPerSec = DefaultBudgetMinRetriesPerSec
	}
	b := &Budget{
		percent: percent,
		reserve: minRetriesPerSec * ttl.Seconds(),
		slot:    max(ttl/budgetSlots, 1),
		now:     time.Now,
	}
	b.start = b.now()
	return b
}

// DefaultBudget returns NewBudget with the defaults: 20% of the calls of
// the last 10 s, plus 10 retries per second in reserve.
func DefaultBudget() *Budget {
	return NewBudget(DefaultBudgetPercent, DefaultBudgetTTL, DefaultBudgetMinRetriesPerSec)
}

// SetClock makes the budget read the time from now instead of time.Now, for
// tests. It empties the window; call it before the budget is used.
func (b *Budget) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = now
	b.start = now()
	b.slots = [budgetSlots]budgetSlot{}
}

// Record deposits for a call's first attempt, whatever its outcome; other
// attempts are not recorded.
func (b *Budget) Record(first bool, _ Class) {
	if b == nil || !first {
		return
	}
	b.mu.Lock()
	b.slotAt(b.index()).deposits++
	b.mu.Unlock()
}

// TryRetry withdraws one retry if the balance allows it.
func (b *Budget) TryRetry() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	index := b.index()
	if b.balanceAt(index) < 1-1e-9 { // forgive the rounding of percent·deposits
		return false
	}
	b.slotAt(index).withdrawals++
	return true
}

// Balance returns how many retries the budget would allow now, possibly
// fractional or negative (below 1, TryRetry refuses).
func (b *Budget) Balance() float64 {
	if b == nil {
		return math.Inf(1)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.balanceAt(b.index())
}

// index numbers the slot of the present moment since start. b.mu must be
// held.
func (b *Budget) index() int64 {
	return int64(max(b.now().Sub(b.start), 0) / b.slot)
}

// slotAt returns the slot for index, emptied if it still holds the counts of
// an older slot. b.mu must be held.
func (b *Budget) slotAt(index int64) *budgetSlot {
	s := &b.slots[index%budgetSlots]
	if s.index != index {
		*s = budgetSlot{index: index}
	}
	return s
}

// balanceAt sums the slots of the window that ends with slot index. b.mu
// must be held.
func (b *Budget) balanceAt(index int64) float64 {
	var deposits, withdrawals int64
	for i := range b.slots {
		if s := &b.slots[i]; s.index > index-budgetSlots && s.index <= index {
			deposits += s.deposits
			withdrawals += s.withdrawals
		}
	}
	return b.reserve + b.percent*float64(deposits) - float64(withdrawals)
}

func positive(f float64) bool { return f > 0 && !math.IsInf(f, 1) }

// Defaults of NewTokenBucket, those of gRPC's retry throttling.
const (
	DefaultTokenBucketTokens = 10
	DefaultTokenBucketRatio  = 0.1
)

// milli is the token bucket's fixed-point scale: tokens are counted in
// thousandths, so a bucket is one atomic integer.
const milli = 1000

// TokenBucket is a retry budget after gRPC's retry throttling, an
// alternative to Budget: a bucket of tokens that an attempt that may have
// executed drains by one token and an attempt the server answered (success,
// application error, rejection, unusable reply) refills by ratio. A
// not-sent attempt changes nothing: it is free. Retries are allowed only
// while more than half of the bucket is left, so a server that fails most
// calls soon sees first attempts only; TryRetry itself spends nothing.
//
// Unlike Budget it counts every failed attempt, so one lost connection
// failing many calls drains a token per call, as in gRPC. A TokenBucket is
// safe for concurrent use; a nil *TokenBucket allows every retry.
type TokenBucket struct {
	max    int64 // bucket size, in thousandths of a token
	ratio  int64 // refill per answer, in thousandths of a token
	tokens atomic.Int64
}

// NewTokenBucket returns a full bucket of maxTokens tokens that each answer
// refills by ratio tokens. Values are kept to three decimals; an argument
// that is not positive and finite takes the default (10 and 0.1).
func NewTokenBucket(maxTokens, ratio float64) *TokenBucket {
	if !positive(maxTokens) {
		maxTokens = DefaultTokenBucketTokens
	}
	if !positive(ratio) {
		ratio = DefaultTokenBucketRatio
	}
	b := &TokenBucket{
		max:   max(int64(math.Round(maxTokens*milli)), 1),
		ratio: max(int64(math.Round(ratio*milli)), 1),
	}
	b.tokens.Store(b.max)
	return b
}

// Tokens returns the tokens left in the bucket.
func (b *TokenBucket) Tokens() float64 { return float64(b.tokens.Load()) / milli }

// MaxTokens returns the size of the bucket.
func (b *TokenBucket) MaxTokens() float64 { return float64(b.max) / milli }

// Record takes a token for an attempt that may have executed, adds ratio
// for one the server answered, and ignores a not-sent one.
func (b *TokenBucket) Record(_ bool, class Class) {
	if b == nil {
		return
	}
	switch class {
	case ClassNotSent:
	case ClassMaybeExecuted:
		b.add(-milli)
	default:
		b.add(b.ratio)
	}
}

// TryRetry reports whether more than half of the bucket is left.
func (b *TokenBucket) TryRetry() bool { return b == nil || 2*b.tokens.Load() > b.max }

func (b *TokenBucket) add(delta int64) {
	for {
		old := b.tokens.Load()
		n := min(max(old+delta, 0), b.max)
		if n == old || b.tokens.CompareAndSwap(old, n) {
			return
		}
	}
}
