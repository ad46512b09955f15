package labrpc_test

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/semrpc/semrpc/labrpc"
)

// kvNet makes a network with one KV server and one connected end.
func kvNet() (*labrpc.Network, *labrpc.ClientEnd) {
	net := labrpc.MakeNetworkSeed(1)
	srv := labrpc.MakeServer()
	srv.AddService(labrpc.MakeService(&KV{data: make(map[string]string)}))
	net.AddServer("kv0", srv)
	end := net.MakeEnd("end-x7Gq") // lab harnesses use random names
	net.Connect("end-x7Gq", "kv0")
	net.Enable("end-x7Gq", true)
	return net, end
}

// Label an end with its owner, summarise a method's args and replies, and
// stream the trace to a callback (TraceToFile writes the same events as
// JSON lines).
func ExampleNetwork_TraceTo() {
	net, end := kvNet()
	defer net.Cleanup()
	net.Label("end-x7Gq", "client→kv0")
	net.Summarize("KV.Put", func(v any) string {
		switch v := v.(type) {
		case PutArgs:
			return "key " + v.Key
		case *PutReply:
			return fmt.Sprintf("previous %q", v.Previous)
		}
		return ""
	})
	stop := net.TraceTo(func(e labrpc.Event) {
		switch e.Kind {
		case labrpc.EventSent:
			fmt.Printf("%s: %s [%s] sent\n", e.Label, e.Method, e.Args)
		case labrpc.EventEnded:
			fmt.Printf("%s: %s %v [%s]\n", e.Label, e.Method, e.Fate, e.Reply)
		case labrpc.EventTopology:
			fmt.Println("network:", e.Topology)
		}
	})
	defer stop()

	var reply PutReply
	end.Call("KV.Put", PutArgs{Key: "a", Value: "1"}, &reply)
	net.Enable("end-x7Gq", false)
	end.Call("KV.Put", PutArgs{Key: "a", Value: "2"}, &reply)
	// Output:
	// client→kv0: KV.Put [key a] sent
	// client→kv0: KV.Put replied [previous ""]
	// network: Enable(end-x7Gq, false)
	// client→kv0: KV.Put [key a] sent
	// client→kv0: KV.Put disconnected []
}

// Write the trace as an HTML timeline (a file a browser opens without a
// network) and as a ShiViz log.
func ExampleNetwork_WriteTimeline() {
	net, end := kvNet()
	defer net.Cleanup()
	net.EnableTrace(true)
	var reply PutReply
	end.Call("KV.Put", PutArgs{Key: "a", Value: "1"}, &reply)

	var page bytes.Buffer
	if err := net.WriteTimeline(&page); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Contains(page.String(), `class="delivered"`))

	var log bytes.Buffer
	if err := net.WriteShiViz(&log); err != nil {
		fmt.Println(err)
	}
	lines := strings.Split(log.String(), "\n")
	fmt.Println(lines[0] == labrpc.ShiVizRegexp)
	for _, l := range lines[2:] {
		fmt.Println(l)
	}
	// Output:
	// true
	// true
	// end_end-x7Gq {"end_end-x7Gq":1}
	// send KV.Put #1 Key="a" Value="1"
	// server_kv0 {"end_end-x7Gq":1,"server_kv0":1}
	// receive KV.Put #1 from end_end-x7Gq
	// server_kv0 {"end_end-x7Gq":1,"server_kv0":2}
	// reply KV.Put #1 to end_end-x7Gq Previous=""
	// end_end-x7Gq {"end_end-x7Gq":2,"server_kv0":2}
	// KV.Put #1: replied
}

// Make every message take time: inside a testing/synctest bubble (or
// under labtest) that is virtual time, so a loop such as "as many calls as
// fit in five seconds" ends; here, outside one, it is real time.
func ExampleNetwork_SetLatency() {
	net, end := kvNet()
	defer net.Cleanup()
	net.SetLatency(2 * time.Millisecond)
	start := time.Now()
	var reply PutReply
	ok := end.Call("KV.Put", PutArgs{Key: "a", Value: "1"}, &reply)
	fmt.Println(ok, time.Since(start) >= 4*time.Millisecond) // request and reply
	// Output: true true
}
