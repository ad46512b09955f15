package labrpc

import (
	"testing"
	"time"
)

// TestReviewChangeDuringRequestDelayReleasesCaller pins a bug: a call took
// its "topology changed" channel only after the request's delay, so a
// DeleteServer, replacement, Enable(false) or Partition made while the
// request was still in flight never woke it. The request then reached the
// old server anyway, and with a handler that never returns (a killed Raft
// peer blocked on its lock) the caller hung until the next, unrelated
// change instead of being released at once.
func TestReviewChangeDuringRequestDelayReleasesCaller(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *fixture)
	}{
		{"DeleteServer", func(f *fixture) { f.net.DeleteServer("s") }},
		{"replaced", func(f *fixture) {
			fresh := MakeServer()
			fresh.AddService(MakeService(&Echo{}))
			f.net.AddServer("s", fresh)
		}},
		{"disabled", func(f *fixture) { f.net.Enable("e", false) }},
		{"partitioned", func(f *fixture) { f.net.Partition([]interface{}{"e"}, []interface{}{"s"}) }},
	}
	for i, tt := range tests {
		subtest(t, tt.name, func(t *testing.T) {
			f := newFixture(t, int64(100+i))
			e := f.end("e")
			// Every request spends 200 ms on the wire before it is delivered.
			if err := f.net.SetLink("e", LinkConfig{MinDelay: 200 * time.Millisecond, MaxDelay: 200 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			defer close(f.echo.block) // lets a wrongly delivered handler end
			result := make(chan bool, 1)
			go func() {
				var n int
				result <- e.Call("Echo.Block", 1, &n)
			}()
			time.Sleep(50 * time.Millisecond) // the request is on the wire
			tt.change(f)
			select {
			case ok := <-result:
				if ok {
					t.Error("call succeeded although its server went away while the request was in flight")
				}
			case <-time.After(3 * time.Second):
				t.Fatal("caller still blocked 3s after the change; it must be released")
			}
		})
	}
}
