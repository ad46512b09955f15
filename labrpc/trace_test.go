package labrpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestTraceLabelsEndsAndRecordsTopology(t *testing.T) {
	f := newFixture(t, 40)
	f.net.EnableTrace(true)
	e := f.end("e")
	f.net.Label("e", "0→2")
	var n int
	e.Call("Echo.Double", 1, &n)
	f.net.Reliable(false)
	f.net.Reliable(true)
	f.net.LongDelays(true)
	f.net.LongReordering(false)
	f.net.Duplicate(2) // clamped
	if err := f.net.SetLink("e", LinkConfig{DropRequest: 0.5}); err != nil {
		t.Fatal(err)
	}
	f.net.ClearLink("e")
	f.net.Partition([]interface{}{"e"}, []interface{}{"s"})
	f.net.Heal()
	f.net.DeleteServer("s")
	f.net.AddServer("s", f.srv)
	f.net.Enable("e", false)
	f.net.SetLatency(time.Millisecond)
	f.net.DeleteEnd("e")

	var topo []string
	var labels []string
	for _, ev := range f.net.Trace() {
		switch ev.Kind {
		case EventTopology:
			topo = append(topo, ev.Topology)
		default:
			labels = append(labels, ev.Label)
		}
	}
	want := []string{
		"MakeEnd(e)", "Connect(e, s)", "Enable(e, true)",
		"Reliable(false)", "Reliable(true)", "LongDelays(true)", "LongReordering(false)", "Duplicate(1)",
		"SetLink(e, {DropRequest:0.5 DropReply:0 Duplicate:0 MinDelay:0s MaxDelay:0s})", "ClearLink(e)",
		"Partition[[e] [s]]", "Heal()", "DeleteServer(s)", "AddServer(s)", "Enable(e, false)",
		"SetLatency(1ms)", "DeleteEnd(e)",
	}
	if strings.Join(topo, "\n") != strings.Join(want, "\n") {
		t.Errorf("topology events:\n%s\nwant:\n%s", strings.Join(topo, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(labels, ",") != "0→2,0→2" {
		t.Errorf("labels of the call's events: %q", labels)
	}
}

func TestSummarizeArgsAndReplies(t *testing.T) {
	f := newFixture(t, 41)
	f.net.EnableTrace(true)
	e := f.end("e")
	f.net.Summarize("Echo.Add", func(v any) string {
		switch v := v.(type) {
		case PairArgs:
			return fmt.Sprintf("x %d y %d", v.X, v.Y)
		case *PairReply:
			return fmt.Sprintf("sum %d", v.Sum)
		}
		return fmt.Sprintf("unexpected %T", v)
	})
	f.net.Summarize("", func(v any) string { return "any" })
	var r PairReply
	var n int
	e.Call("Echo.Add", PairArgs{X: 2, Y: 3}, &r)
	e.Call("Echo.Double", 1, &n)
	f.net.Summarize("", nil) // back to the default summary: the value itself
	e.Call("Echo.Double", 1, &n)
	var got []string
	for _, ev := range f.net.Trace() {
		if ev.Kind == EventEnded {
			got = append(got, ev.Method+"["+ev.Args+"]["+ev.Reply+"]")
		}
	}
	want := "Echo.Add[x 2 y 3][sum 5],Echo.Double[any][any],Echo.Double[1][2]"
	if strings.Join(got, ",") != want {
		t.Errorf("summaries %s, want %s", strings.Join(got, ","), want)
	}
}

// Raft-shaped messages, for the default summary.
type entry struct {
	Term    int
	Command interface{}
}

type appendArgs struct {
	Term, LeaderId, PrevLogIndex, PrevLogTerm int
	Entries                                   []entry
	LeaderCommit                              int
	Snapshot                                  []byte
	Note                                      string
	hidden                                    int
	Nested                                    struct{ X int }
}

func TestDefaultSummaryShowsSmallFieldsAndLengths(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"a struct", appendArgs{Term: 3, LeaderId: 1, PrevLogIndex: 5, PrevLogTerm: 2, Entries: make([]entry, 2), LeaderCommit: 4, Snapshot: make([]byte, 100), Note: "hi", hidden: 9},
			`Term=3 LeaderId=1 PrevLogIndex=5 PrevLogTerm=2 len(Entries)=2 LeaderCommit=4 len(Snapshot)=100 Note="hi"`},
		{"a pointer to a reply", &VoteReply{Term: 7, VoteGranted: true}, "Term=7 VoteGranted=true"},
		{"a long string shows its length", struct{ Value string }{strings.Repeat("v", 30)}, "len(Value)=30"},
		{"a plain value", 42, "42"},
		{"a slice", []int{1, 2, 3}, "len=3"},
		{"a nil pointer", (*VoteReply)(nil), ""},
	}
	for _, tt := range tests {
		subtest(t, tt.name, func(t *testing.T) {
			if got := defaultSummary(tt.v); got != tt.want {
				t.Errorf("defaultSummary = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTraceToStreamsInOrderUntilStopped(t *testing.T) {
	f := newFixture(t, 42)
	e := f.end("e")
	var streamed []Event // f runs under the trace's lock: no lock needed here
	stop := f.net.TraceTo(func(ev Event) { streamed = append(streamed, ev) })
	var n int
	for i := 0; i < 3; i++ {
		e.Call("Echo.Double", i, &n)
	}
	stop()
	stop() // idempotent
	e.Call("Echo.Double", 9, &n)
	if len(streamed) != 6 {
		t.Fatalf("streamed %d events, want 6 (a start and an ending per call)", len(streamed))
	}
	for i, ev := range streamed {
		if ev.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, ev.Seq)
		}
	}
	if tr := f.net.Trace(); len(tr) != 8 {
		t.Errorf("the ring has %d events, want 8 (streaming stopped, tracing did not)", len(tr))
	}
}

func TestTraceToFileWritesJSONLines(t *testing.T) {
	f := newFixture(t, 43)
	e := f.end("e")
	f.net.Label("e", "client")
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	stop, err := f.net.TraceToFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	e.Call("Echo.Double", 1, &n)
	f.net.Enable("e", false)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, fmt.Sprintf("%v/%v/%v/%v/%v", m["seq"], m["kind"], m["label"], m["fate"], m["topology"]))
	}
	want := "1/sent/client/<nil>/<nil>,2/ended/client/replied/<nil>,3/topology/<nil>/<nil>/Enable(e, false)"
	if strings.Join(got, ",") != want {
		t.Errorf("lines %s\nwant  %s", strings.Join(got, ","), want)
	}
	if _, err := f.net.TraceToFile(filepath.Join(t.TempDir(), "missing", "x.jsonl")); err == nil {
		t.Error("TraceToFile into a missing directory succeeded")
	}
}

func TestSetTraceSizeKeepsTheNewest(t *testing.T) {
	f := newFixture(t, 44)
	f.net.EnableTrace(true)
	e := f.end("e")
	var n int
	for i := 0; i < 10; i++ {
		e.Call("Echo.Double", i, &n)
	}
	f.net.SetTraceSize(5)
	tr := f.net.Trace()
	if len(tr) != 5 || tr[0].Seq != 19 || tr[4].Seq != 23 { // 3 topology events, then 20 of calls
		t.Fatalf("after shrinking: %d events from %d", len(tr), tr[0].Seq)
	}
	e.Call("Echo.Double", 1, &n)
	tr = f.net.Trace()
	if len(tr) != 5 || tr[0].Seq != 21 || tr[4].Seq != 25 {
		t.Errorf("after two more: %d events, %d..%d", len(tr), tr[0].Seq, tr[len(tr)-1].Seq)
	}
	f.net.SetTraceSize(0)
	for i := 0; i < 10; i++ {
		e.Call("Echo.Double", i, &n)
	}
	if got := len(f.net.Trace()); got != 25 {
		t.Errorf("back to the default size: %d events, want 25", got)
	}
}

// traceOfEveryFate runs, in virtual time, calls that end every way the
// timeline distinguishes, and returns the network (cleaned up).
func traceOfEveryFate(t *testing.T) *Network {
	var net *Network
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 45)
		net = f.net
		f.net.EnableTrace(true)
		var n int
		links := []struct {
			end  string
			cfg  LinkConfig
			long bool
		}{
			{"ok", LinkConfig{}, false},
			{"lostreq", LinkConfig{DropRequest: 1}, false},
			{"lostreply", LinkConfig{DropReply: 1}, false},
			{"dup", LinkConfig{Duplicate: 1}, false},
			{"held", LinkConfig{}, true},
		}
		for _, l := range links {
			e := f.end(l.end)
			f.net.Label(l.end, "lane-"+l.end)
			if l.end == "ok" {
				f.net.Label(l.end, "lane-ok <&>")
			}
			if err := f.net.SetLink(l.end, l.cfg); err != nil {
				t.Fatal(err)
			}
			f.net.LongReordering(l.long)
			for i := 0; i < 3; i++ { // long reordering holds two in three
				e.Call("Echo.Double", i, &n)
			}
		}
		f.net.LongReordering(false)
		off := f.net.MakeEnd("off")
		off.Call("Echo.Double", 1, &n)
		synctest.Wait() // the duplicates are delivered
	})
	return net
}

func TestWriteTimelineDrawsLanesFatesAndTopology(t *testing.T) {
	net := traceOfEveryFate(t)
	var b bytes.Buffer
	if err := net.WriteTimeline(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"<!DOCTYPE html>", "seed 45", ">server s<", ">lane-ok &lt;&amp;&gt;<", ">lane-held<", ">end off<",
		`class="delivered"`, `class="request-lost"`, `class="reply-lost"`, `class="duplicated"`,
		`class="delayed"`, `class="unreachable"`, `class="topo"`, "LongReordering(true)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	// The drawing is well-formed XML (labels and details escaped).
	svg := page[strings.Index(page, "<svg"):]
	svg = svg[:strings.Index(svg, "</svg>")+len("</svg>")]
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("timeline SVG: %v", err)
		}
	}
	// Self-contained: nothing fetched.
	for _, bad := range []string{"<script src", "<link", "url(", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("timeline refers to an outside resource: %q", bad)
		}
	}
	if strings.Count(page, "http") != 1 { // the SVG namespace only
		t.Errorf("timeline mentions http %d times", strings.Count(page, "http"))
	}
}

func TestWriteShiVizClocksFollowMessages(t *testing.T) {
	net := traceOfEveryFate(t)
	var b bytes.Buffer
	if err := net.WriteShiViz(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if lines[0] != ShiVizRegexp || lines[1] != "" {
		t.Fatalf("header %q %q", lines[0], lines[1])
	}
	entry := regexp.MustCompile(`^(\S+) (\{.*\})$`)
	own := make(map[string]int)
	var receives int
	for i := 2; i+1 < len(lines); i += 2 {
		m := entry.FindStringSubmatch(lines[i])
		if m == nil {
			t.Fatalf("line %d %q is not host {clock}", i, lines[i])
		}
		var clock map[string]int
		if err := json.Unmarshal([]byte(m[2]), &clock); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		host := m[1]
		own[host]++
		if clock[host] != own[host] {
			t.Fatalf("line %d: %s's own clock is %d, want %d", i, host, clock[host], own[host])
		}
		event := lines[i+1]
		if strings.HasPrefix(event, "receive ") {
			receives++
			from := event[strings.LastIndex(event, " from ")+len(" from "):]
			if clock[from] == 0 {
				t.Errorf("line %d: %s received from %s without its clock: %v", i, host, from, clock)
			}
		}
	}
	if receives == 0 || own["network"] == 0 || own["server_s"] == 0 || own["lane-dup"] == 0 {
		t.Errorf("hosts %v, %d receives", own, receives)
	}
	if (len(lines)-2)%2 != 0 {
		t.Errorf("%d lines after the header: entries are two lines", len(lines)-2)
	}
}
