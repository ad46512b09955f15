package labrpc

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fate is one step in the life of a call, as recorded in the trace.
type Fate uint8

// The fates a call goes through. A call starts with FateSent and ends with
// exactly one of FateDisconnected, FateDropped, FateReplyDropped,
// FateServerDead, FateReplied, FateFailed or FateTimedOut.
const (
	FateSent         Fate = iota + 1 // the caller sent the request
	FateDisconnected                 // end disabled, unconnected, partitioned, or no server: never delivered
	FateDropped                      // the request was lost; the handler did not run
	FateDuplicated                   // the request will be delivered a second time
	FateDelivered                    // the request reached the server (Delay: the request's delay)
	FateReplyDropped                 // the handler ran; its reply was lost
	FateServerDead                   // the server was deleted or replaced, or the end disabled, before the reply left
	FateReplied                      // the reply reached the caller (Delay: extra reordering delay)
	FateFailed                       // a local or server error: unencodable args, unknown method, bad reply type...
	FateTimedOut                     // the caller's context ended, or the network was cleaned up
)

var fateNames = [...]string{
	FateSent:         "sent",
	FateDisconnected: "disconnected",
	FateDropped:      "dropped",
	FateDuplicated:   "duplicated",
	FateDelivered:    "delivered",
	FateReplyDropped: "reply dropped",
	FateServerDead:   "server dead",
	FateReplied:      "replied",
	FateFailed:       "failed",
	FateTimedOut:     "timed out",
}

// String returns the fate's name as TraceString prints it.
func (f Fate) String() string {
	if int(f) < len(fateNames) && fateNames[f] != "" {
		return fateNames[f]
	}
	return fmt.Sprintf("Fate(%d)", uint8(f))
}

// Event is one entry of the network's trace.
type Event struct {
	Seq    uint64        // position in the network's trace, from 1
	At     time.Duration // time since the network was made
	End    interface{}   // the end's name
	Server interface{}   // the server's name, nil if the end was not connected
	Call   uint64        // the call's number on its end, from 1
	Method string        // "Service.Method"
	Fate   Fate
	Delay  time.Duration // the delay this step implies, if any
	Detail string        // an error's text, for FateFailed and FateTimedOut
}

// String formats the event on one line.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d +%v end=%v call=%d %s", e.Seq, e.At.Round(time.Microsecond), e.End, e.Call, e.Method)
	if e.Server != nil {
		fmt.Fprintf(&b, " -> %v", e.Server)
	}
	fmt.Fprintf(&b, ": %v", e.Fate)
	if e.Delay > 0 {
		fmt.Fprintf(&b, " (delay %v)", e.Delay)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// DefaultTraceSize is how many events the trace keeps; older ones are
// overwritten.
const DefaultTraceSize = 4096

// tracer is a bounded ring of events. When off, recording costs one atomic load.
type tracer struct {
	on atomic.Bool

	mu     sync.Mutex // protects following
	seq    uint64
	events []Event // ring, len ≤ DefaultTraceSize
	next   int     // where the next event goes once events is full
}

func (t *tracer) add(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	e.Seq = t.seq
	if len(t.events) < DefaultTraceSize {
		t.events = append(t.events, e)
		return
	}
	t.events[t.next] = e
	t.next = (t.next + 1) % DefaultTraceSize
}

func (t *tracer) snapshot() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Event, 0, len(t.events))
	out = append(out, t.events[t.next:]...)
	return append(out, t.events[:t.next]...)
}

func (t *tracer) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events, t.next = nil, 0
}

// EnableTrace turns the event trace on or off. It is off by default; while
// off it costs one atomic load per step of a call. Turning it on clears it.
func (n *Network) EnableTrace(on bool) {
	if on && !n.trace.on.Load() {
		n.trace.reset()
	}
	n.trace.on.Store(on)
}

// Trace returns the recorded events, oldest first: at most the last
// DefaultTraceSize.
func (n *Network) Trace() []Event { return n.trace.snapshot() }

// TraceString returns the trace one event per line, for a failing test to
// print, headed by the network's seed.
func (n *Network) TraceString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "labrpc trace (seed %d):\n", n.seed)
	for _, e := range n.Trace() {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
