package semantics

import (
	"math"
	"sync"
	"testing"
	"time"
)

// The tests use fakeClock from table_test.go.

func TestBudget(t *testing.T) {
	// Ops: 'd' a call's first attempt (deposit), 'a' a later attempt (no
	// deposit), 'y' TryRetry that must succeed, 'n' TryRetry that must fail,
	// '1'..'9' advance the clock by that many seconds.
	tests := []struct {
		name             string
		percent          float64
		ttl              time.Duration
		minRetriesPerSec float64
		ops              string
		balance          float64 // Balance() at the end
	}{
		{"reserve only", 0.2, 10 * time.Second, 0.1, "yn", 0},
		{"reserve refills after ttl", 0.2, 10 * time.Second, 0.1, "yn9n1yn", 0},
		{"five calls earn one retry", 0.2, 10 * time.Second, 0.1, "yn" + "dddd" + "n" + "d" + "yn", 0},
		{"later attempts do not deposit", 0.2, 10 * time.Second, 0.1, "y" + "aaaaaaaaaa" + "n", 0},
		{"deposits and withdrawals expire", 0.5, 10 * time.Second, 0.1, "dddd" + "9" + "yy" + "1" + "n" + "9" + "yn", 0},
		{"a deposit still counts 9 s later", 1, 10 * time.Second, 0.1, "y" + "d" + "9" + "yn", 0},
		{"defaults", 0.2, 10 * time.Second, 10, "ddddd", 101},
		{"defaults for zero", 0, 0, 0, "ddddd", 101},
		{"defaults for negative and NaN", -1, -time.Second, math.NaN(), "ddddd" + "y", 100},
		{"defaults for infinity", math.Inf(1), 10 * time.Second, math.Inf(1), "ddddd", 101},
		{"a short ttl", 1, time.Second, 2, "yyn" + "d" + "yn" + "1" + "yyn", 0},
		{"percent above one", 3, 10 * time.Second, 0.1, "yn" + "d" + "yyyn", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			b := NewBudget(tt.percent, tt.ttl, tt.minRetriesPerSec)
			b.SetClock(clock.Now)
			for i, op := range tt.ops {
				switch {
				case op == 'd':
					b.Record(true, ClassMaybeExecuted)
				case op == 'a':
					b.Record(false, ClassMaybeExecuted)
				case op == 'y' || op == 'n':
					if got, want := b.TryRetry(), op == 'y'; got != want {
						t.Fatalf("op %d: TryRetry() = %v, want %v (balance %v)", i, got, want, b.Balance())
					}
				default:
					clock.Advance(time.Duration(op-'0') * time.Second)
				}
			}
			if got := b.Balance(); math.Abs(got-tt.balance) > 1e-6 {
				t.Errorf("Balance() = %v, want %v", got, tt.balance)
			}
		})
	}
}

// Outcomes do not matter to the budget: a first attempt deposits whatever
// its class.
func TestBudgetRecordIgnoresClass(t *testing.T) {
	for c := ClassNone; c <= ClassUnusable; c++ {
		b := NewBudget(1, 10*time.Second, 1e-9)
		b.SetClock(newFakeClock().Now)
		b.Record(true, c)
		b.Record(false, c)
		if got := b.Balance(); math.Abs(got-1) > 1e-6 {
			t.Errorf("%v: Balance() = %v, want 1", c, got)
		}
	}
}

func TestBudgetNilAllowsEverything(t *testing.T) {
	var b *Budget
	b.Record(true, ClassMaybeExecuted)
	if !b.TryRetry() {
		t.Error("(*Budget)(nil).TryRetry() = false, want true")
	}
	var tb *TokenBucket
	tb.Record(true, ClassMaybeExecuted)
	if !tb.TryRetry() {
		t.Error("(*TokenBucket)(nil).TryRetry() = false, want true")
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(0.5, 10*time.Second, 1) // reserve 10
	b.SetClock(newFakeClock().Now)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex // protects granted
		granted int
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 100; i++ {
				b.Record(true, ClassNone)
				if b.TryRetry() {
					n++
				}
			}
			mu.Lock()
			granted += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	// 10 in reserve and 0.5 per call: 410 retries in all, never more.
	if granted > 410 {
		t.Errorf("%d retries granted, want at most 410", granted)
	}
	for b.TryRetry() {
		granted++
	}
	if granted != 410 {
		t.Errorf("%d retries granted in all, want 410", granted)
	}
}

func TestTokenBucket(t *testing.T) {
	tests := []struct {
		name       string
		max, ratio float64
		ops        string // f = maybe executed, n = not sent, s = success, a = application error, r = rejected
		want       float64
		allow      bool
	}{
		{"full", 10, 0.1, "", 10, true},
		{"never above max", 10, 0.1, "ssss", 10, true},
		{"one failure", 10, 0.1, "f", 9, true},
		{"half is not enough", 10, 0.1, "fffff", 5, false},
		{"not sent is free", 10, 0.1, "nnnnnnnnnnnnnnnn", 10, true},
		{"never below zero", 10, 0.1, "fffffffffffffff", 0, false},
		{"refill", 10, 0.1, "ffffffs", 4.1, false},
		{"answers refill", 10, 0.5, "ffffffsar", 5.5, true},
		{"small bucket", 1, 0.1, "f", 0, false},
		{"defaults for zero", 0, 0, "f", 9, true},
		{"defaults for negative", -3, -1, "ffs", 8.1, true},
		{"defaults for NaN and infinity", math.NaN(), math.Inf(1), "ffs", 8.1, true},
		{"three decimals", 2.0004, 0.0004, "", 2, true},
	}
	classes := map[rune]Class{'f': ClassMaybeExecuted, 'n': ClassNotSent, 's': ClassNone, 'a': ClassApplication, 'r': ClassRejected}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewTokenBucket(tt.max, tt.ratio)
			for i, op := range tt.ops {
				b.Record(i == 0, classes[op])
			}
			if got := b.Tokens(); got != tt.want {
				t.Errorf("Tokens() = %v, want %v", got, tt.want)
			}
			if got := b.TryRetry(); got != tt.allow {
				t.Errorf("TryRetry() = %v, want %v", got, tt.allow)
			}
			if got := b.Tokens(); got != tt.want {
				t.Errorf("Tokens() after TryRetry = %v, want %v: asking spends nothing", got, tt.want)
			}
		})
	}
}

func TestTokenBucketConcurrent(t *testing.T) {
	b := NewTokenBucket(1000, 1)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				b.Record(false, ClassMaybeExecuted)
			}
		}()
	}
	wg.Wait()
	if got := b.Tokens(); got != 200 {
		t.Errorf("Tokens() = %v, want 200 after 800 concurrent failures", got)
	}
}
