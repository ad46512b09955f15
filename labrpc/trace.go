package labrpc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fate is how a call ended, as recorded in the trace.
type Fate uint8

// The ways a call ends: each call's EventEnded carries exactly one.
const (
	FateDisconnected Fate = iota + 1 // end disabled, unconnected, partitioned, or no server: never delivered
	FateDropped                      // the request was lost; the handler did not run
	FateReplyDropped                 // the handler ran; its reply was lost
	FateServerDead                   // the server was deleted or replaced, or the end disabled, before the reply left
	FateReplied                      // the reply reached the caller
	FateFailed                       // a local or server error: unencodable args, unknown method, bad reply type, the handler's error...
	FateTimedOut                     // the caller's context ended, or the network was cleaned up
)

var fateNames = [...]string{
	FateDisconnected: "disconnected",
	FateDropped:      "dropped",
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

// EventKind says what an Event records.
type EventKind uint8

// The kinds of events.
const (
	EventSent     EventKind = iota + 1 // a call started
	EventEnded                         // a call ended: Fate says how
	EventTopology                      // the network changed: Topology says how
)

var kindNames = [...]string{EventSent: "sent", EventEnded: "ended", EventTopology: "topology"}

// String returns the kind's name.
func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one entry of the network's trace. A call gives two: EventSent
// when it starts and EventEnded, which repeats what a reader needs from the
// first (Sent, Args), when it ends. Times are since the network was made
// (virtual time inside a synctest bubble).
type Event struct {
	Seq    uint64        // position in the network's trace, from 1
	At     time.Duration // when it happened
	Kind   EventKind
	End    interface{} // the end's name (calls)
	Label  string      // the end's label, if Label gave it one
	Server interface{} // the server's name, nil if the end was not connected
	Call   uint64      // the call's number on its end, from 1
	Method string      // "Service.Method"
	From   interface{} // the server whose goroutine made the call, when labrpc can tell (see Network.WriteTimeline); nil otherwise
	Args   string      // the args' summary: Summarize's, or by default their small fields (terms, indexes, ids, lengths)
	// Ending only.
	Fate       Fate
	Sent       time.Duration // when the call started
	Reached    bool          // the request reached the server
	Delivered  time.Duration // when, if Reached
	Duplicated bool          // a second copy of the request was sent
	Held       bool          // long reordering held the reply back
	Delay      time.Duration // the request's delay
	ReplyDelay time.Duration // the reply's delay, or how long a disconnected call took to fail
	Reply      string        // the reply's summary (FateReplied)
	Detail     string        // an error's text
	// Topology only: the change, as the call that made it ("Enable(e1, false)").
	Topology string
}

// String formats the event on one line.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d +%v ", e.Seq, e.At.Round(time.Microsecond))
	if e.Kind == EventTopology {
		b.WriteString(e.Topology)
		return b.String()
	}
	fmt.Fprintf(&b, "end=%v", e.End)
	if e.Label != "" {
		fmt.Fprintf(&b, " (%s)", e.Label)
	}
	if e.From != nil {
		fmt.Fprintf(&b, " from %v", e.From)
	}
	fmt.Fprintf(&b, " call=%d %s", e.Call, e.Method)
	if e.Server != nil {
		fmt.Fprintf(&b, " -> %v", e.Server)
	}
	if e.Args != "" {
		fmt.Fprintf(&b, " [%s]", e.Args)
	}
	if e.Kind == EventSent {
		b.WriteString(": sent")
		return b.String()
	}
	fmt.Fprintf(&b, ": %v", e.Fate)
	if e.Duplicated {
		b.WriteString(", duplicated")
	}
	if e.Held {
		b.WriteString(", held")
	}
	if e.Delay > 0 {
		fmt.Fprintf(&b, " (request delay %v)", e.Delay)
	}
	if e.ReplyDelay > 0 {
		fmt.Fprintf(&b, " (reply delay %v)", e.ReplyDelay)
	}
	if e.Reply != "" {
		fmt.Fprintf(&b, " [%s]", e.Reply)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// jsonEvent is Event as one JSON line: names as text, durations in
// nanoseconds, empty fields left out.
type jsonEvent struct {
	Seq        uint64 `json:"seq"`
	At         int64  `json:"at_ns"`
	Kind       string `json:"kind"`
	End        string `json:"end,omitempty"`
	Label      string `json:"label,omitempty"`
	From       string `json:"from,omitempty"`
	Server     string `json:"server,omitempty"`
	Call       uint64 `json:"call,omitempty"`
	Method     string `json:"method,omitempty"`
	Args       string `json:"args,omitempty"`
	Fate       string `json:"fate,omitempty"`
	Sent       int64  `json:"sent_ns,omitempty"`
	Reached    bool   `json:"reached,omitempty"`
	Delivered  int64  `json:"delivered_ns,omitempty"`
	Duplicated bool   `json:"duplicated,omitempty"`
	Held       bool   `json:"held,omitempty"`
	Delay      int64  `json:"delay_ns,omitempty"`
	ReplyDelay int64  `json:"reply_delay_ns,omitempty"`
	Reply      string `json:"reply,omitempty"`
	Detail     string `json:"detail,omitempty"`
	Topology   string `json:"topology,omitempty"`
}

// MarshalJSON encodes the event as the JSON-lines stream writes it: names
// formatted with %v, durations as integers in nanoseconds.
func (e Event) MarshalJSON() ([]byte, error) {
	j := jsonEvent{
		Seq: e.Seq, At: int64(e.At), Kind: e.Kind.String(), Label: e.Label,
		Call: e.Call, Method: e.Method, Args: e.Args, Sent: int64(e.Sent), Reached: e.Reached,
		Delivered: int64(e.Delivered), Duplicated: e.Duplicated, Held: e.Held,
		Delay: int64(e.Delay), ReplyDelay: int64(e.ReplyDelay), Reply: e.Reply,
		Detail: e.Detail, Topology: e.Topology,
	}
	if e.End != nil {
		j.End = fmt.Sprint(e.End)
	}
	if e.Server != nil {
		j.Server = fmt.Sprint(e.Server)
	}
	if e.From != nil {
		j.From = fmt.Sprint(e.From)
	}
	if e.Fate != 0 {
		j.Fate = e.Fate.String()
	}
	return json.Marshal(j)
}

// DefaultTraceSize is how many events the trace keeps unless SetTraceSize
// says otherwise; older ones are overwritten. 4,096 events is about 15 s of
// a three-peer Raft run.
const DefaultTraceSize = 4096

// tracer is a bounded ring of events plus what decorates them. When off,
// recording costs one atomic load.
type tracer struct {
	on atomic.Bool

	mu         sync.Mutex // protects following
	seq        uint64
	size       int     // the ring's capacity
	events     []Event // ring, len ≤ size
	next       int     // where the next event goes once events is full
	labels     map[interface{}]string
	summarizer map[string]func(v any) string // method ("" for all) → summary
	sinks      map[int]func(Event)
	nextSink   int
}

func (t *tracer) add(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	e.Seq = t.seq
	if e.End != nil && t.labels != nil {
		e.Label = t.labels[e.End]
	}
	for _, f := range t.sinks {
		f(e)
	}
	size := t.size
	if size <= 0 {
		size = DefaultTraceSize
	}
	if len(t.events) < size {
		t.events = append(t.events, e)
		return
	}
	t.events[t.next] = e
	t.next = (t.next + 1) % size
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

// summarize returns the summary of v, the args or reply of method: its
// summarizer's, or the default one (summary.go).
func (t *tracer) summarize(method string, v any) string {
	t.mu.Lock()
	f := t.summarizer[method]
	if f == nil {
		f = t.summarizer[""]
	}
	t.mu.Unlock()
	if v == nil {
		return ""
	}
	if f == nil {
		return defaultSummary(v)
	}
	return f(v)
}

// record adds e to the trace if it is on.
func (n *Network) record(e Event) {
	if !n.trace.on.Load() {
		return
	}
	n.trace.add(e)
}

// topology records a change of the network. It may be called with n.mu held.
func (n *Network) topology(format string, args ...any) {
	if !n.trace.on.Load() {
		return
	}
	n.trace.add(Event{Kind: EventTopology, At: n.now(), Topology: fmt.Sprintf(format, args...)})
}

// EnableTrace turns the event trace on or off. It is off by default; while
// off it costs one atomic load per call. Turning it on clears it.
func (n *Network) EnableTrace(on bool) {
	if on && !n.trace.on.Load() {
		n.trace.reset()
	}
	n.trace.on.Store(on)
}

// SetTraceSize sets how many events the trace keeps (size ≤ 0: the
// default, DefaultTraceSize). The newest events are kept.
func (n *Network) SetTraceSize(size int) {
	if size <= 0 {
		size = DefaultTraceSize
	}
	t := &n.trace
	t.mu.Lock()
	defer t.mu.Unlock()
	old := append(append([]Event(nil), t.events[t.next:]...), t.events[:t.next]...)
	if len(old) > size {
		old = old[len(old)-size:]
	}
	t.size, t.events, t.next = size, old, 0
}

// Label names an end's owner in the trace, e.g. Label(endname, "0→2") for
// the end server 0 uses to reach server 2: each event of a call on the end
// carries the label, and the timeline gives a labelled end its own lane
// under that name. An empty label removes it.
func (n *Network) Label(endname interface{}, label string) {
	t := &n.trace
	t.mu.Lock()
	defer t.mu.Unlock()
	if label == "" {
		delete(t.labels, endname)
		return
	}
	if t.labels == nil {
		t.labels = make(map[interface{}]string)
	}
	t.labels[endname] = label
}

// Summarize installs f to summarise, in the trace, the args and replies of
// method ("Raft.AppendEntries"; "" for every method without its own), e.g.
// "term 3 index 17". Without one, a message is summarised by its small
// fields: numbers, flags, strings up to 24 bytes, and the lengths of
// slices, maps and longer strings ("Term=3 LeaderId=0 len(Entries)=2"). f receives the caller's args when a traced call starts
// and its reply when a reply arrives; it runs on the caller's goroutine and
// must not keep v. A nil f removes the summarizer.
func (n *Network) Summarize(method string, f func(v any) string) {
	t := &n.trace
	t.mu.Lock()
	defer t.mu.Unlock()
	if f == nil {
		delete(t.summarizer, method)
		return
	}
	if t.summarizer == nil {
		t.summarizer = make(map[string]func(v any) string)
	}
	t.summarizer[method] = f
}

// TraceTo turns the trace on and streams every event recorded from now on
// to f, in order, until stop is called. f runs while the trace is locked:
// it must return quickly and must not call the network.
func (n *Network) TraceTo(f func(Event)) (stop func()) {
	t := &n.trace
	t.mu.Lock()
	if t.sinks == nil {
		t.sinks = make(map[int]func(Event))
	}
	id := t.nextSink
	t.nextSink++
	t.sinks[id] = f
	t.mu.Unlock()
	n.trace.on.Store(true)
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.sinks, id)
			t.mu.Unlock()
		})
	}
}

// TraceToFile turns the trace on and writes every event recorded from now
// on to the file at path, one JSON object per line (see Event.MarshalJSON),
// until stop is called; stop flushes and closes the file and returns the
// first error met.
func (n *Network) TraceToFile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("labrpc: trace file: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	var werr error // guarded by the trace's lock, like every sink
	stopSink := n.TraceTo(func(e Event) {
		if werr == nil {
			werr = enc.Encode(e)
		}
	})
	var once sync.Once
	var result error
	return func() error {
		once.Do(func() {
			stopSink()
			n.trace.mu.Lock()
			result = werr
			n.trace.mu.Unlock()
			if err := w.Flush(); err != nil && result == nil {
				result = err
			}
			if err := f.Close(); err != nil && result == nil {
				result = err
			}
			if result != nil {
				result = fmt.Errorf("labrpc: trace file: %w", result)
			}
		})
		return result
	}, nil
}

// Trace returns the recorded events, oldest first: at most the last
// DefaultTraceSize (or SetTraceSize).
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
