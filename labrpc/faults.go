package labrpc

import (
	"errors"
	"fmt"
	"math/rand"
	"time"
)

// LinkConfig sets the faults of the link from one end to its server,
// replacing the network-wide defaults (Reliable, Duplicate) for that end.
// The zero value is a perfect link. Long reordering and the delays of
// disconnected calls still follow the network's settings.
type LinkConfig struct {
	// DropRequest is the probability that a request is lost before the
	// handler runs.
	DropRequest float64
	// DropReply is the probability that a reply is lost after the handler ran.
	DropReply float64
	// Duplicate is the probability that a request is delivered twice.
	Duplicate float64
	// MinDelay and MaxDelay bound the delay before a request is delivered
	// (uniform). A duplicate is delivered after its own delay in the same range.
	MinDelay, MaxDelay time.Duration
}

// The classic unreliable network: 0–26 ms delay, 10% of requests and 10% of
// replies lost.
var unreliableLink = LinkConfig{DropRequest: 0.1, DropReply: 0.1, MaxDelay: 26 * time.Millisecond}

func (c LinkConfig) validate() error {
	for _, p := range []float64{c.DropRequest, c.DropReply, c.Duplicate} {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("labrpc: link probability %v outside [0, 1]", p)
		}
	}
	if c.MinDelay < 0 || c.MaxDelay < c.MinDelay {
		return errors.New("labrpc: link delays must satisfy 0 <= MinDelay <= MaxDelay")
	}
	return nil
}

// delay maps a raw random number into [MinDelay, MaxDelay].
func (c LinkConfig) delay(r uint64) time.Duration {
	span := uint64(c.MaxDelay - c.MinDelay)
	if span == 0 {
		return c.MinDelay
	}
	return c.MinDelay + time.Duration(r%(span+1))
}

// fate holds every random decision one call may need. All are drawn when
// the call starts, always the same number of them, so the k-th call on an
// end meets the same fate for a given seed however the calls interleave
// with topology changes and with each other.
type fate struct {
	call       uint64
	delay      uint64  // request delay, mapped by LinkConfig.delay
	dropReq    float64 // compared with DropRequest
	dup        float64 // compared with Duplicate
	dupDelay   uint64  // the duplicate's delay
	dropReply  float64 // compared with DropReply
	reorder    int     // [0, 900): the reply is held back if < 600
	reorderMs  int     // [0, 2000): how far, as 200 + this
	disconnect uint64  // the delay before a disconnected call fails
}

// draw takes the next call's fate from the end's generator.
func (e *ClientEnd) draw() fate {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	r := e.rng
	f := fate{
		call:       e.calls,
		delay:      r.Uint64(),
		dropReq:    r.Float64(),
		dup:        r.Float64(),
		dupDelay:   r.Uint64(),
		dropReply:  r.Float64(),
		reorder:    r.Intn(900),
		disconnect: r.Uint64(),
	}
	// The classic skew: most held-back replies come soon, a few very late.
	f.reorderMs = r.Intn(1 + r.Intn(2000))
	return f
}

// reorderDelay is the extra delay of the reply under long reordering: two
// replies in three are held back 200 ms plus a skewed amount up to 2 s.
func (f fate) reorderDelay() time.Duration {
	if f.reorder < 600 {
		return time.Duration(200+f.reorderMs) * time.Millisecond
	}
	return 0
}

// disconnectDelay is how long a call that cannot be delivered takes to fail:
// up to 100 ms, or up to 7 s with long delays.
func (f fate) disconnectDelay(long bool) time.Duration {
	if long {
		return time.Duration(f.disconnect%7000) * time.Millisecond
	}
	return time.Duration(f.disconnect%100) * time.Millisecond
}

// endRand derives the generator of the index-th end made from the network
// seed, so each end's stream of fates is independent of the others'.
func endRand(seed int64, index uint64) *rand.Rand {
	return rand.New(rand.NewSource(int64(mix(uint64(seed) ^ mix(index)))))
}

// mix is the splitmix64 finaliser.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
