package labrpc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"time"
)

// The trace drawn two ways: a self-contained HTML timeline (a lane per
// server and per end, each call a bar coloured by how it ended) and a log
// in the format ShiViz (a viewer of distributed executions) reads, with a
// vector clock per event.

// callClass names how a call looks on the timeline.
func callClass(e Event) string {
	switch e.Fate {
	case FateReplied:
		switch {
		case e.Duplicated:
			return "duplicated"
		case e.Held:
			return "delayed"
		}
		return "delivered"
	case FateDropped:
		return "request-lost"
	case FateReplyDropped:
		return "reply-lost"
	case FateDisconnected, FateServerDead:
		return "unreachable"
	case FateTimedOut:
		return "timed-out"
	}
	return "failed"
}

// timelineClasses are the classes in the legend's order, with colours.
var timelineClasses = []struct{ name, colour string }{
	{"delivered", "#2e8b57"},
	{"duplicated", "#1e6fd9"},
	{"delayed", "#d9a21e"},
	{"request-lost", "#d9461e"},
	{"reply-lost", "#a0168c"},
	{"unreachable", "#777777"},
	{"failed", "#000000"},
	{"timed-out", "#b5b5b5"},
	{"in-flight", "#bfe3cf"},
}

// laneOf returns the lane of a call's end for ShiViz: its label, or its
// name.
func laneOf(e Event) string {
	if e.Label != "" {
		return e.Label
	}
	return fmt.Sprintf("end %v", e.End)
}

// A timeline's lanes come in groups, one per server: the server's own lane
// (a tick where each request arrived), then the lanes of the ends it sends
// on ("1 → 2": every end server 1's goroutines call server 2 on), then the
// ends no server can be shown to send on, under the server they reach
// ("→ 2 end cCH2dbRHR…"). Ends connected to no server come last.

// timelineLane is one lane: its group, its order in the group, its title.
type timelineLane struct {
	group string // the server's name, "" for no server
	rank  int    // 0 the server's own lane, 1 an end it sends on, 2 an end reaching it
	title string
}

// serverName formats a server's name for the page.
func serverName(name interface{}) string { return fmt.Sprint(name) }

// endLane is the lane of a call's end.
func endLane(e Event) timelineLane {
	switch {
	case e.Label != "":
		group := e.Server
		if e.From != nil {
			group = e.From
		}
		if group == nil {
			return timelineLane{rank: 2, title: e.Label}
		}
		return timelineLane{group: serverName(group), rank: 1, title: e.Label}
	case e.From != nil && e.Server != nil:
		return timelineLane{group: serverName(e.From), rank: 1, title: fmt.Sprintf("%v → %v", e.From, e.Server)}
	case e.From != nil:
		return timelineLane{group: serverName(e.From), rank: 1, title: fmt.Sprintf("%v → (no server): end %v", e.From, e.End)}
	case e.Server != nil:
		return timelineLane{group: serverName(e.Server), rank: 2, title: fmt.Sprintf("→ %v: end %v", e.Server, e.End)}
	}
	return timelineLane{rank: 2, title: fmt.Sprintf("end %v", e.End)}
}

func serverLane(name interface{}) timelineLane {
	return timelineLane{group: serverName(name), rank: 0, title: "server " + serverName(name)}
}

// sortLanes orders lanes by group (servers by name, no server last), then
// rank, then title.
func sortLanes(lanes []timelineLane) {
	sort.Slice(lanes, func(i, j int) bool {
		a, b := lanes[i], lanes[j]
		if a.group != b.group {
			if a.group == "" || b.group == "" {
				return b.group == ""
			}
			return a.group < b.group
		}
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		return a.title < b.title
	})
}

// WriteTimeline writes the trace as a self-contained HTML page. Lanes are
// grouped by server: each server's lane shows a tick where each request
// arrived; under it come the ends its goroutines send on, one lane per
// destination ("1 → 2"), where labrpc can tell (the calling goroutine runs
// a method of a value the server registered with AddService, see
// ClientEnd); ends no server can be shown to send on are grouped under the
// server they reach, by name; a labelled end's lane takes its label. Each
// call is one bar on its end's lane from send to end, coloured by its fate
// (delivered, duplicated, delayed by reordering, request lost, reply lost,
// unreachable, failed, timed out), with its args and reply summarised;
// each change of topology is a dashed line across all lanes. Hovering
// shows an element's details, one entry per event: the call on its bar,
// the request's arrival on its tick. The page needs no network access.
func (n *Network) WriteTimeline(w io.Writer) error {
	events := n.Trace()
	ended := make(map[callKey]bool)
	var end time.Duration
	laneSet := map[timelineLane]bool{}
	for _, e := range events {
		end = max(end, e.At)
		switch e.Kind {
		case EventEnded:
			ended[callKey{e.End, e.Call}] = true
			laneSet[endLane(e)] = true
			if e.Server != nil {
				laneSet[serverLane(e.Server)] = true
			}
		case EventSent:
			laneSet[endLane(e)] = true
			if e.Server != nil {
				laneSet[serverLane(e.Server)] = true
			}
		}
	}
	lanes := make([]timelineLane, 0, len(laneSet))
	for l := range laneSet {
		lanes = append(lanes, l)
	}
	sortLanes(lanes)
	laneY := make(map[timelineLane]int, len(lanes))
	const (
		laneH  = 22
		top    = 30
		left   = 230
		minW   = 900
		maxW   = 30000
		barPad = 4
	)
	for i, l := range lanes {
		laneY[l] = top + i*laneH
	}
	span := max(end, time.Millisecond)
	width := int(span / time.Millisecond) // a pixel per millisecond...
	width = min(max(width, minW), maxW)   // ...within bounds
	x := func(t time.Duration) float64 {
		return left + float64(t)/float64(span)*float64(width)
	}
	height := top + len(lanes)*laneH + 10

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>labrpc timeline (seed %d)</title>\n<style>\n", n.seed)
	p("body{font-family:sans-serif;font-size:13px} .lane{font-size:12px} .server-lane{font-weight:bold} .topo{stroke:#444;stroke-dasharray:3,3} .group{stroke:#999}\n")
	p(".legend span{display:inline-block;padding:1px 6px;margin-right:4px;color:#fff}\n")
	for _, c := range timelineClasses {
		p(".%s{fill:%s;stroke:%s} .legend .%s{background:%s}\n", c.name, c.colour, c.colour, c.name, c.colour)
	}
	p("</style></head><body>\n<h3>labrpc timeline: seed %d, %d events over %v</h3>\n", n.seed, len(events), end.Round(time.Microsecond))
	p("<div class=\"legend\">")
	for _, c := range timelineClasses {
		p("<span class=\"%s\">%s</span>", c.name, c.name)
	}
	p(" — topology changes: dashed lines. Lanes grouped by server: its arrivals, then the ends it sends on. Hover for details.</div>\n")
	p("<p id=\"drawn\"></p>\n")
	p("<div style=\"overflow-x:auto\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\">\n", left+width+20, height)
	for i, l := range lanes {
		y := laneY[l]
		if i%2 == 0 {
			p("<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f4f4f4\"/>\n", y, left+width+20, laneH)
		}
		if i > 0 && lanes[i-1].group != l.group {
			p("<line class=\"group\" x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", y, left+width+20, y)
		}
		cls := "lane lane-name"
		if l.rank == 0 {
			cls += " server-lane"
		}
		indent := 4
		if l.rank > 0 && l.group != "" {
			indent = 16 // under its server
		}
		p("<text class=\"%s\" x=\"%d\" y=\"%d\">%s</text>\n", cls, indent, y+laneH-7, html.EscapeString(l.title))
	}
	for i := 0; i <= 10; i++ {
		t := span * time.Duration(i) / 10
		p("<text class=\"lane\" x=\"%.1f\" y=\"14\">%v</text>\n", x(t), t.Round(time.Millisecond))
	}
	for _, e := range events {
		switch e.Kind {
		case EventTopology:
			p("<line class=\"topo\" x1=\"%.1f\" y1=\"18\" x2=\"%.1f\" y2=\"%d\"><title>%s</title></line>\n", x(e.At), x(e.At), height, html.EscapeString(e.String()))
		case EventSent:
			if ended[callKey{e.End, e.Call}] {
				continue
			}
			y := laneY[endLane(e)]
			p("<rect class=\"call in-flight\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\"><title>%s (no end recorded)</title></rect>\n",
				x(e.At), y+barPad, max(x(end)-x(e.At), 1), laneH-2*barPad, html.EscapeString(e.String()))
		case EventEnded:
			l := endLane(e)
			cls := callClass(e)
			p("<rect class=\"call %s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\"><title>%s</title></rect>\n",
				cls, x(e.Sent), laneY[l]+barPad, max(x(e.At)-x(e.Sent), 1), laneH-2*barPad, html.EscapeString(e.String()))
			if e.Reached && e.Server != nil {
				arrival := fmt.Sprintf("+%v server %v received %s call %d from %s", e.Delivered.Round(time.Microsecond), e.Server, e.Method, e.Call, l.title)
				if e.Args != "" {
					arrival += " [" + e.Args + "]"
				}
				p("<rect class=\"arrival %s\" x=\"%.1f\" y=\"%d\" width=\"2\" height=\"%d\"><title>%s</title></rect>\n",
					cls, x(e.Delivered), laneY[serverLane(e.Server)]+barPad, laneH-2*barPad, html.EscapeString(arrival))
			}
		}
	}
	p("</svg></div>\n")
	// Counts what the browser laid out, for the reader and for tests that
	// open the page in a browser.
	p("<script>\n(function(){var lanes=document.querySelectorAll('svg text.lane-name').length,bars=0;" +
		"document.querySelectorAll('svg rect.call').forEach(function(r){var b=r.getBBox();if(b.width>0&&b.height>0)bars++;});" +
		"document.getElementById('drawn').textContent=lanes+' lanes, '+bars+' calls drawn';})();\n</script>\n")
	p("</body></html>\n")
	return bw.Flush()
}

type callKey struct {
	end  interface{}
	call uint64
}

// ShiVizRegexp is the first line of WriteShiViz's output: how ShiViz
// parses the entries that follow (host, vector clock, then the event on
// the next line).
const ShiVizRegexp = `(?<host>\S*) (?<clock>{.*})\n(?<event>.*)`

// shivizStep is one event of one host in the ShiViz log.
type shivizStep struct {
	at    time.Duration
	seq   uint64 // the trace event it comes from
	order int    // its place within that event's steps
	host  string
	text  string
	recv  *map[string]int // the message it receives, or nil
	send  *map[string]int // where to keep the clock of the message it sends, or nil
}

// WriteShiViz writes the trace as a log ShiViz loads (its file format: the
// parsing expression, an empty line for the executions delimiter, then
// the entries). Each end, server and the network itself (topology changes)
// is a host, except that an end a server's goroutines send on (Event.From)
// is that server's host; a call is a message from its end to its server
// and, if answered, one back; vector clocks follow these messages.
func (n *Network) WriteShiViz(w io.Writer) error {
	var steps []shivizStep
	ended := make(map[callKey]bool)
	events := n.Trace()
	for _, e := range events {
		if e.Kind == EventEnded {
			ended[callKey{e.End, e.Call}] = true
		}
	}
	for _, e := range events {
		switch e.Kind {
		case EventTopology:
			steps = append(steps, shivizStep{at: e.At, seq: e.Seq, host: "network", text: e.Topology})
		case EventSent:
			if !ended[callKey{e.End, e.Call}] {
				steps = append(steps, shivizStep{at: e.At, seq: e.Seq, host: shivizHost(laneOf(e)),
					text: fmt.Sprintf("send %s #%d %s (no end recorded)", e.Method, e.Call, e.Args)})
			}
		case EventEnded:
			endHost := shivizHost(laneOf(e))
			if e.From != nil && e.Label == "" {
				// The server that sends is one process with the
				// server that receives: ShiViz's model.
				endHost = shivizHost(fmt.Sprintf("server %v", e.From))
			}
			request, reply := new(map[string]int), new(map[string]int)
			steps = append(steps, shivizStep{at: e.Sent, seq: e.Seq, order: 0, host: endHost,
				text: fmt.Sprintf("send %s #%d %s", e.Method, e.Call, e.Args), send: request})
			answered := e.Fate == FateReplied || (e.Fate == FateFailed && e.Reached)
			if e.Reached && e.Server != nil {
				srv := shivizHost(fmt.Sprintf("server %v", e.Server))
				steps = append(steps, shivizStep{at: e.Delivered, seq: e.Seq, order: 1, host: srv,
					text: fmt.Sprintf("receive %s #%d from %s", e.Method, e.Call, endHost), recv: request})
				if answered {
					left := max(e.Delivered, e.At-e.ReplyDelay)
					steps = append(steps, shivizStep{at: left, seq: e.Seq, order: 2, host: srv,
						text: fmt.Sprintf("reply %s #%d to %s %s", e.Method, e.Call, endHost, e.Reply), send: reply})
				}
			}
			s := shivizStep{at: e.At, seq: e.Seq, order: 3, host: endHost,
				text: fmt.Sprintf("%s #%d: %v %s", e.Method, e.Call, e.Fate, e.Detail)}
			if answered && e.Reached {
				s.recv = reply
			}
			steps = append(steps, s)
		}
	}
	sort.SliceStable(steps, func(i, j int) bool {
		a, b := steps[i], steps[j]
		if a.at != b.at {
			return a.at < b.at
		}
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		return a.order < b.order
	})
	clocks := make(map[string]map[string]int)
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n\n", ShiVizRegexp)
	for _, s := range steps {
		c := clocks[s.host]
		if c == nil {
			c = make(map[string]int)
			clocks[s.host] = c
		}
		if s.recv != nil {
			for h, v := range *s.recv {
				c[h] = max(c[h], v)
			}
		}
		c[s.host]++
		if s.send != nil {
			m := make(map[string]int, len(c))
			for h, v := range c {
				m[h] = v
			}
			*s.send = m
		}
		js, err := json.Marshal(c) // keys sorted
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "%s %s\n%s\n", s.host, js, oneLine(s.text))
	}
	return bw.Flush()
}

// shivizHost makes a lane's name a ShiViz host name (no spaces).
func shivizHost(lane string) string {
	return strings.Join(strings.Fields(lane), "_")
}

func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}
