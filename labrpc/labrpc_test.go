package labrpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/labrpc/internal/gobcheck"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Echo is the test service.
type Echo struct {
	calls   atomic.Int64
	block   chan struct{} // Block waits on it
	entered chan struct{} // Block signals here on entry
}

type PairArgs struct {
	X, Y int
}

type PairReply struct {
	Sum  int
	Text string
}

func (e *Echo) Hello(args string, reply *string) {
	e.calls.Add(1)
	*reply = "hello " + args
}

func (e *Echo) Add(args PairArgs, reply *PairReply) {
	e.calls.Add(1)
	reply.Sum = args.X + args.Y
	reply.Text = fmt.Sprint(args.X, "+", args.Y)
}

func (e *Echo) AddPtr(args *PairArgs, reply *int) {
	e.calls.Add(1)
	*reply = args.X + args.Y
}

func (e *Echo) Double(args int, reply *int) {
	e.calls.Add(1)
	*reply = 2 * args
}

func (e *Echo) Len(args []string, reply *int) error {
	e.calls.Add(1)
	*reply = len(args)
	return nil
}

func (e *Echo) Keys(args map[string]int, reply *[]string) {
	e.calls.Add(1)
	for k := range args {
		*reply = append(*reply, k)
	}
}

func (e *Echo) Fail(args int, reply *int) error {
	e.calls.Add(1)
	*reply = 99
	return errors.New("echo: asked to fail")
}

// Mutate changes its args: the caller must not see it.
func (e *Echo) Mutate(args *PairArgs, reply *PairReply) {
	e.calls.Add(1)
	args.X = -1
	reply.Sum = args.Y
}

func (e *Echo) Block(args int, reply *int) {
	e.calls.Add(1)
	if e.entered != nil {
		e.entered <- struct{}{}
	}
	<-e.block
	*reply = args
}

// fixture is a network with one server "s" holding an Echo and ends made
// on demand, each connected to "s" and enabled.
type fixture struct {
	t    *testing.T
	net  *Network
	srv  *Server
	echo *Echo
}

func newFixture(t *testing.T, seed int64) *fixture {
	t.Helper()
	net := MakeNetworkSeed(seed)
	t.Cleanup(net.Cleanup)
	f := &fixture{t: t, net: net, srv: MakeServer(), echo: &Echo{block: make(chan struct{})}}
	f.srv.AddService(MakeService(f.echo))
	net.AddServer("s", f.srv)
	return f
}

func (f *fixture) end(name interface{}) *ClientEnd {
	e := f.net.MakeEnd(name)
	f.net.Connect(name, "s")
	f.net.Enable(name, true)
	return e
}

// within fails the test if fn does not return within d.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still running after %v (deadlock?)", what, d)
	}
}

// captureLog redirects the standard logger for the rest of the test.
func captureLog(t *testing.T) *syncBuffer {
	var buf syncBuffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&buf)
	log.SetFlags(0)
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })
	return &buf
}

type syncBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestBasic(t *testing.T) {
	f := newFixture(t, 1)
	e := f.end("e")
	var reply string
	if !e.Call("Echo.Hello", "world", &reply) || reply != "hello world" {
		t.Fatalf("Call = %q, want %q", reply, "hello world")
	}
	var pr PairReply
	if !e.Call("Echo.Add", PairArgs{2, 3}, &pr) || pr.Sum != 5 || pr.Text != "2+3" {
		t.Fatalf("Add: %+v", pr)
	}
}

func TestTypes(t *testing.T) {
	net := MakeNetworkSeed(2)
	defer net.Cleanup()
	echo := &Echo{}
	srv := MakeServer()
	srv.AddService(MakeService(echo))
	net.AddServer(7, srv) // ints as names
	e := net.MakeEnd(99)
	net.Connect(99, 7)
	net.Enable(99, true)

	var n int
	if !e.Call("Echo.Double", 21, &n) || n != 42 {
		t.Errorf("Double(21) = %d", n)
	}
	n = 0
	if !e.Call("Echo.AddPtr", &PairArgs{X: 4, Y: 5}, &n) || n != 9 {
		t.Errorf("AddPtr(pointer) = %d", n)
	}
	n = 0
	if !e.Call("Echo.AddPtr", PairArgs{X: 1, Y: 1}, &n) || n != 2 {
		t.Errorf("AddPtr(value) = %d", n)
	}
	n = 0
	if !e.Call("Echo.Len", []string{"a", "b", "c"}, &n) || n != 3 {
		t.Errorf("Len = %d", n)
	}
	var keys []string
	if !e.Call("Echo.Keys", map[string]int{"k": 1}, &keys) || len(keys) != 1 || keys[0] != "k" {
		t.Errorf("Keys = %v", keys)
	}
	if got := net.GetCount(7); got != 5 {
		t.Errorf("GetCount(7) = %d, want 5", got)
	}
}

// TestNoSharing: the handler sees a copy of the args and the caller a copy
// of the reply.
func TestNoSharing(t *testing.T) {
	f := newFixture(t, 3)
	e := f.end("e")
	args := &PairArgs{X: 1, Y: 2}
	var reply PairReply
	if !e.Call("Echo.Mutate", args, &reply) || reply.Sum != 2 {
		t.Fatalf("Mutate: %+v", reply)
	}
	if args.X != 1 {
		t.Errorf("handler's change to args reached the caller: %+v", args)
	}
}

// TestSeveralServices: two services on one server, dispatched by name.
func TestSeveralServices(t *testing.T) {
	f := newFixture(t, 4)
	f.srv.AddService(MakeService(&Voter{}))
	e := f.end("e")
	var vr VoteReply
	if !e.Call("Voter.RequestVote", &VoteArgs{Term: 3}, &vr) || !vr.VoteGranted || vr.Term != 3 {
		t.Errorf("Voter: %+v", vr)
	}
	var n int
	if !e.Call("Echo.Double", 4, &n) || n != 8 {
		t.Errorf("Echo: %d", n)
	}
}

func TestDisconnect(t *testing.T) {
	f := newFixture(t, 5)
	e := f.net.MakeEnd("e")
	f.net.Connect("e", "s")
	var n int
	if e.Call("Echo.Double", 1, &n) {
		t.Fatal("call on a never-enabled end succeeded")
	}
	f.net.Enable("e", true)
	if !e.Call("Echo.Double", 2, &n) || n != 4 {
		t.Fatalf("call after Enable(true) failed: %d", n)
	}
	f.net.Enable("e", false)
	n = 0
	if e.Call("Echo.Double", 3, &n) || n != 0 {
		t.Fatalf("call after Enable(false): ok, n=%d", n)
	}
	if got := f.echo.calls.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
	unconnected := f.net.MakeEnd("u")
	f.net.Enable("u", true)
	if unconnected.Call("Echo.Double", 1, &n) {
		t.Error("call on an unconnected end succeeded")
	}
	f.net.Connect("u", "nobody")
	if unconnected.Call("Echo.Double", 1, &n) {
		t.Error("call to a missing server succeeded")
	}
}

func TestCounts(t *testing.T) {
	f := newFixture(t, 6)
	e := f.end("e")
	off := f.net.MakeEnd("off")
	for i := 0; i < 17; i++ {
		var n int
		if !e.Call("Echo.Double", i, &n) || n != 2*i {
			t.Fatalf("call %d failed", i)
		}
	}
	var n int
	off.Call("Echo.Double", 1, &n)
	if got := f.net.GetCount("s"); got != 17 {
		t.Errorf("GetCount = %d, want 17", got)
	}
	if got := f.srv.GetCount(); got != 17 {
		t.Errorf("Server.GetCount = %d, want 17", got)
	}
	if got := f.net.GetTotalCount(); got != 18 {
		t.Errorf("GetTotalCount = %d, want 18 (disabled calls count too)", got)
	}
	if got := f.net.GetCount("nobody"); got != 0 {
		t.Errorf("GetCount(missing) = %d", got)
	}
}

// gobSize is what a fresh gob encoder produces for v.
func gobSize(t *testing.T, v interface{}) int64 {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return int64(buf.Len())
}

func TestBytes(t *testing.T) {
	f := newFixture(t, 7)
	e := f.end("e")
	// Twice: the second time the type is cached, and must be charged the same.
	for i := 0; i < 2; i++ {
		before := f.net.GetTotalBytes()
		args := PairArgs{X: 1000 + i, Y: 12345}
		var reply PairReply
		if !e.Call("Echo.Add", args, &reply) {
			t.Fatal("call failed")
		}
		want := gobSize(t, args) + gobSize(t, reply)
		if got := f.net.GetTotalBytes() - before; got != want {
			t.Errorf("round %d: bytes grew by %d, want %d (fresh gob size of args+reply)", i, got, want)
		}
	}
	before := f.net.GetTotalBytes()
	big := strings.Repeat("x", 5000)
	var reply string
	if !e.Call("Echo.Hello", big, &reply) {
		t.Fatal("call failed")
	}
	if got, want := f.net.GetTotalBytes()-before, gobSize(t, big)+gobSize(t, reply); got != want {
		t.Errorf("big string: bytes grew by %d, want %d", got, want)
	}
}

func TestConcurrentMany(t *testing.T) {
	f := newFixture(t, 8)
	const ends, perEnd, shared = 10, 20, 10
	one := f.end("shared")
	var wg sync.WaitGroup
	errs := make(chan error, ends*perEnd+shared*perEnd)
	for i := 0; i < ends; i++ {
		e := f.end(i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < perEnd; j++ {
				var r PairReply
				if !e.Call("Echo.Add", PairArgs{i, j}, &r) || r.Sum != i+j {
					errs <- fmt.Errorf("end %d call %d: %+v", i, j, r)
				}
			}
		}(i)
	}
	for i := 0; i < shared; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < perEnd; j++ {
				var n int
				if !one.Call("Echo.Double", i*1000+j, &n) || n != 2*(i*1000+j) {
					errs <- fmt.Errorf("shared end, goroutine %d call %d: %d", i, j, n)
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := f.net.GetCount("s"), (ends+shared)*perEnd; got != want {
		t.Errorf("GetCount = %d, want %d", got, want)
	}
}

func TestUnreliable(t *testing.T) {
	parallel(t)
	f := newFixture(t, 9)
	f.net.Reliable(false)
	if f.net.IsReliable() {
		t.Fatal("IsReliable after Reliable(false)")
	}
	const callers, perCaller = 30, 10
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		e := f.end(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perCaller; j++ {
				var n int
				if e.Call("Echo.Double", j, &n) {
					if n != 2*j {
						t.Errorf("wrong reply %d for %d", n, j)
					}
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// 90% of requests arrive and 90% of their replies: 81% expected.
	total := callers * perCaller
	if got := ok.Load(); got < int64(total*70/100) || got > int64(total*90/100) {
		t.Errorf("%d of %d calls succeeded; want about 81%%", got, total)
	}
	if got := f.echo.calls.Load(); got < int64(total*82/100) || got > int64(total*97/100) {
		t.Errorf("handler ran %d times for %d calls; want about 90%%", got, total)
	}
}

// TestKilledServer: a deleted server never replies, even when its handler
// finishes, and a caller blocked on it is released promptly.
func TestKilledServer(t *testing.T) {
	f := newFixture(t, 10)
	f.echo.entered = make(chan struct{}, 1)
	e := f.end("e")
	result := make(chan bool)
	go func() {
		var n int
		result <- e.Call("Echo.Block", 5, &n)
	}()
	<-f.echo.entered
	start := time.Now()
	f.net.DeleteServer("s")
	select {
	case ok := <-result:
		if ok {
			t.Error("call to a deleted server succeeded")
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("caller released %v after DeleteServer, want about 100 ms at most", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("caller still blocked 2s after DeleteServer")
	}
	close(f.echo.block) // the handler finishes now; its reply must go nowhere

	// A handler that finishes after its server was replaced: no reply either.
	g := newFixture(t, 11)
	g.echo.entered = make(chan struct{}, 1)
	e2 := g.end("e")
	go func() {
		var n int
		result <- e2.Call("Echo.Block", 5, &n)
	}()
	<-g.echo.entered
	fresh := MakeServer()
	fresh.AddService(MakeService(&Echo{}))
	g.net.AddServer("s", fresh)
	close(g.echo.block)
	if <-result {
		t.Error("reply delivered from a replaced server")
	}
	var n int
	if !e2.Call("Echo.Double", 2, &n) || n != 4 {
		t.Error("call to the replacement server failed")
	}
}

// TestServerDeadAfterHandlerReturned: the liveness check also runs after
// the handler returned, so a server deleted while the handler was running
// never delivers, even if the caller saw no change while waiting.
func TestDisableDuringHandlerLosesReply(t *testing.T) {
	f := newFixture(t, 12)
	f.echo.entered = make(chan struct{}, 1)
	e := f.end("e")
	result := make(chan bool)
	go func() {
		var n int
		result <- e.Call("Echo.Block", 1, &n)
	}()
	<-f.echo.entered
	f.net.Enable("e", false)
	f.net.Enable("e", true) // too late: the reply is lost
	close(f.echo.block)
	if <-result {
		t.Error("reply delivered although the end was disabled while the handler ran")
	}
}

// TestEnabledCallNotDelayedByEarlierDisabledCalls pins the head-of-line
// bug: calls made while an end was disabled wait out their (long) delays,
// and a call made after re-enabling must not wait behind them.
func TestEnabledCallNotDelayedByEarlierDisabledCalls(t *testing.T) {
	f := newFixture(t, 13)
	f.net.LongDelays(true)
	e := f.net.MakeEnd("e")
	f.net.Connect("e", "s")
	var wg sync.WaitGroup
	var early atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int
			if e.Call("Echo.Double", 1, &n) {
				t.Error("call on a disabled end succeeded")
			}
			early.Add(1)
		}()
	}
	time.Sleep(20 * time.Millisecond)
	f.net.Enable("e", true)
	start := time.Now()
	var n int
	if !e.Call("Echo.Double", 21, &n) || n != 42 {
		t.Fatal("call after re-enabling failed")
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("call after re-enabling took %v", d)
	}
	if early.Load() == 20 {
		t.Log("all disabled calls had already returned; the test proved little this time")
	}
	// Cleanup releases the disabled calls still waiting out up to 7 s.
	within(t, time.Second, "Cleanup releasing delayed calls", func() {
		f.net.Cleanup()
		wg.Wait()
	})
}

// TestLongDelays: with long delays on, calls on a disabled end still
// return false, within 7 s, while the setting is toggled concurrently.
func TestLongDelays(t *testing.T) {
	parallel(t)
	f := newFixture(t, 14)
	f.net.LongDelays(true)
	if !f.net.IsLongDelays() {
		t.Fatal("IsLongDelays false after LongDelays(true)")
	}
	e := f.net.MakeEnd("e")
	f.net.Connect("e", "s")
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var n int
			if e.Call("Echo.Double", 1, &n) {
				t.Error("disabled call succeeded")
			}
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
		}()
	}
	stop := make(chan struct{})
	toggled := make(chan struct{})
	go func() {
		defer close(toggled)
		for {
			select {
			case <-stop:
				return
			default:
				f.net.LongDelays(f.net.IsLongDelays())
				time.Sleep(time.Millisecond)
			}
		}
	}()
	within(t, 8*time.Second, "disabled calls under long delays", wg.Wait)
	close(stop)
	<-toggled
	if d := time.Duration(slowest.Load()); d < 100*time.Millisecond {
		t.Errorf("slowest disabled call took %v; long delays should reach well beyond 100 ms", d)
	}
}

func TestLongReorderingDistribution(t *testing.T) {
	e := &ClientEnd{rng: endRand(15, 1)}
	const draws = 30000
	held := 0
	var sum time.Duration
	var under700 int
	for i := 0; i < draws; i++ {
		d := e.draw().reorderDelay()
		if d == 0 {
			continue
		}
		held++
		if d < 200*time.Millisecond || d > 2200*time.Millisecond {
			t.Fatalf("reorder delay %v outside [200ms, 2.2s]", d)
		}
		if d < 700*time.Millisecond {
			under700++
		}
		sum += d
	}
	if frac := float64(held) / draws; frac < 0.64 || frac > 0.69 {
		t.Errorf("%.3f of replies held back, want 2/3", frac)
	}
	// 200 + U[0, 1+U[0,2000)): mean about 700 ms, more than half below it.
	mean := sum / time.Duration(held)
	if mean < 650*time.Millisecond || mean > 750*time.Millisecond {
		t.Errorf("mean reorder delay %v, want about 700ms", mean)
	}
	if frac := float64(under700) / float64(held); frac < 0.55 {
		t.Errorf("only %.2f of held replies under 700 ms; the distribution should be skewed short", frac)
	}
}

func TestLongReordering(t *testing.T) {
	parallel(t)
	f := newFixture(t, 16)
	f.net.LongReordering(true)
	var wg sync.WaitGroup
	var slow atomic.Int64
	for i := 0; i < 12; i++ {
		e := f.end(i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			var n int
			if !e.Call("Echo.Double", i, &n) || n != 2*i {
				t.Errorf("call %d failed", i)
			}
			if time.Since(start) >= 200*time.Millisecond {
				slow.Add(1)
			}
		}(i)
	}
	within(t, 3*time.Second, "reordered calls", wg.Wait)
	if s := slow.Load(); s == 0 || s == 12 {
		t.Errorf("%d of 12 replies held back ≥ 200 ms; want some but not all", s)
	}
}

// fates reduces a trace to what a replay must reproduce.
func fates(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		if e.Kind == EventTopology {
			out[i] = "topology/" + e.Topology
			continue
		}
		out[i] = fmt.Sprintf("%v/%d/%s/%v/%v", e.End, e.Call, e.Method, e.Kind, e.Delay)
		if e.Kind == EventEnded {
			out[i] = fmt.Sprintf("%v/%d/%s/%v/%v/dup=%v/%v", e.End, e.Call, e.Method, e.Fate, e.Delay, e.Duplicated, e.ReplyDelay)
		}
	}
	return out
}

func TestSeedReplay(t *testing.T) {
	run := func(seed int64) []string {
		f := newFixture(t, seed)
		f.net.EnableTrace(true)
		e := f.end("e")
		if err := f.net.SetLink("e", LinkConfig{DropRequest: 0.2, DropReply: 0.2, Duplicate: 0.2, MaxDelay: 300 * time.Microsecond}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 150; i++ {
			var n int
			e.Call("Echo.Double", i, &n)
		}
		// A second end, and the classic unreliable defaults.
		f.net.Reliable(false)
		f.net.Duplicate(0.1)
		g := f.end("g")
		for i := 0; i < 15; i++ {
			var n int
			g.Call("Echo.Double", i, &n)
		}
		f.net.Enable("g", false)
		var n int
		g.Call("Echo.Double", 0, &n)
		return fates(f.net.Trace())
	}
	a, b, c := run(77), run(77), run(78)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("same seed, different traces:\n%s\n---\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Error("different seeds gave identical traces")
	}
	seen := make(map[string]bool)
	for _, s := range a {
		parts := strings.Split(s, "/")
		if len(parts) > 5 {
			seen[parts[3]] = true
			seen[parts[5]] = true
		}
	}
	for _, f := range []string{"dropped", "dup=true", "reply dropped", "replied", "disconnected"} {
		if !seen[f] {
			t.Errorf("trace has no %q ending; the replay test does not cover it", f)
		}
	}
}

// Counter counts executions per id.
type Counter struct {
	mu    sync.Mutex // protects runs
	runs  map[int]int
	total atomic.Int64
}

type IncArgs struct {
	ID int
}

func (c *Counter) Inc(args IncArgs, reply *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[args.ID]++
	c.total.Add(1)
	*reply = c.runs[args.ID]
	return nil
}

func newCounterNet(t *testing.T, seed int64) (*Network, *Counter, *Server) {
	net := MakeNetworkSeed(seed)
	t.Cleanup(net.Cleanup)
	c := &Counter{runs: make(map[int]int)}
	srv := MakeServer()
	srv.AddService(MakeService(c))
	net.AddServer("s", srv)
	return net, c, srv
}

func TestDuplicatePlainCallRunsTwice(t *testing.T) {
	net, c, srv := newCounterNet(t, 17)
	net.Duplicate(1)
	e := net.MakeEnd("e")
	net.Connect("e", "s")
	net.Enable("e", true)
	var n int
	if !e.Call("Counter.Inc", IncArgs{ID: 1}, &n) {
		t.Fatal("call failed")
	}
	testwait.For(t, "the duplicate", func() bool { return c.total.Load() == 2 })
	if got := srv.GetCount(); got != 2 {
		t.Errorf("GetCount = %d, want 2", got)
	}
	if got := net.GetTotalCount(); got != 1 {
		t.Errorf("GetTotalCount = %d, want 1 (one call)", got)
	}
}

func TestDuplicateAtMostOnceRunsOnce(t *testing.T) {
	net, c, srv := newCounterNet(t, 18)
	net.Duplicate(1)
	e := net.MakeEnd("e")
	net.Connect("e", "s")
	net.Enable("e", true)
	id, err := srv.Core().Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	h := &semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: srv.Core().Table().Epoch()}
	var n int
	if err := e.RoundTrip(context.Background(), &rpc.Request{ServiceMethod: "Counter.Inc", Header: h, Args: IncArgs{ID: 1}}, &n); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the duplicate", func() bool { return srv.GetCount() == 2 })
	testwait.For(t, "the table to answer the duplicate", func() bool {
		st := srv.Core().Table().Stats()
		return st.Duplicates+st.InFlightWaits == 1
	})
	if got := c.total.Load(); got != 1 {
		t.Errorf("handler ran %d times under at-most-once, want 1", got)
	}
}

// TestRPCClientAtMostOnce runs rpc.Client over a lossy, duplicating link:
// retries and network duplicates reach the server, and no call may execute
// twice.
func TestRPCClientAtMostOnce(t *testing.T) {
	net, c, srv := newCounterNet(t, 19)
	e := net.MakeEnd("e")
	net.Connect("e", "s")
	net.Enable("e", true)
	if err := net.SetLink("e", LinkConfig{DropRequest: 0.2, DropReply: 0.3, Duplicate: 0.3, MaxDelay: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	client := rpc.NewClient(e, rpc.WithSemantics(semantics.AtMostOnce(semantics.MaxAttempts(20), semantics.Backoff(time.Millisecond, 2*time.Millisecond))), rpc.WithRetryBudget(nil))
	defer client.Close()
	okCalls := 0
	for i := 0; i < 60; i++ {
		var n int
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := client.Call(ctx, "Counter.Inc", IncArgs{ID: i}, &n)
		cancel()
		if err == nil {
			okCalls++
			if n != 1 {
				t.Errorf("call %d: reply %d, want 1 (first execution)", i, n)
			}
		}
	}
	if okCalls < 55 {
		t.Errorf("only %d of 60 at-most-once calls succeeded with 20 attempts each", okCalls)
	}
	if st := srv.Core().Table().Stats(); st.Duplicates == 0 {
		t.Errorf("no retry was answered from the table (%+v); the test proved nothing", st)
	}
	time.Sleep(5 * time.Millisecond) // late network duplicates reach the table
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, runs := range c.runs {
		if runs > 1 {
			t.Errorf("call %d executed %d times under at-most-once", id, runs)
		}
	}
}

// TestLateDuplicateAfterAckIsStale: a duplicate delivered after the client
// acknowledged its call must be refused, not run again.
func TestLateDuplicateAfterAckIsStale(t *testing.T) {
	net, c, srv := newCounterNet(t, 28)
	e := net.MakeEnd("e")
	net.Connect("e", "s")
	net.Enable("e", true)
	id, err := srv.Core().Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	epoch := srv.Core().Table().Epoch()
	send := func(seq, ack uint64) error {
		var n int
		h := &semantics.Header{Client: id, Seq: seq, Ack: ack, Epoch: epoch}
		return e.RoundTrip(context.Background(), &rpc.Request{ServiceMethod: "Counter.Inc", Header: h, Args: IncArgs{ID: int(seq)}}, &n)
	}
	if err := send(1, 1); err != nil {
		t.Fatal(err)
	}
	if err := send(2, 2); err != nil { // acknowledges seq 1
		t.Fatal(err)
	}
	err = send(1, 1) // the late duplicate
	if !errors.Is(err, semantics.ErrStale) {
		t.Errorf("late duplicate of an acknowledged call: %v, want ErrStale", err)
	}
	if got := c.total.Load(); got != 2 {
		t.Errorf("handler ran %d times for 2 calls and a stale duplicate", got)
	}
}

func TestRoundTripErrorClasses(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fixture)
		method   string
		args     interface{}
		class    semantics.Class
		sentinel error
	}{
		{"ok", func(*fixture) {}, "Echo.Double", 2, semantics.ClassNone, nil},
		{"disconnected", func(f *fixture) { f.net.Enable("e", false) }, "Echo.Double", 2, semantics.ClassNotSent, ErrDisconnected},
		{"partitioned", func(f *fixture) { f.net.Partition([]interface{}{"e"}, []interface{}{"s"}) }, "Echo.Double", 2, semantics.ClassNotSent, ErrDisconnected},
		{"request lost", func(f *fixture) { _ = f.net.SetLink("e", LinkConfig{DropRequest: 1}) }, "Echo.Double", 2, semantics.ClassMaybeExecuted, ErrRequestDropped},
		{"reply lost", func(f *fixture) { _ = f.net.SetLink("e", LinkConfig{DropReply: 1}) }, "Echo.Double", 2, semantics.ClassMaybeExecuted, ErrReplyDropped},
		{"unknown method", func(*fixture) {}, "Echo.Nope", 2, semantics.ClassRejected, semantics.ErrRejected},
		{"unknown service", func(*fixture) {}, "Nope.Double", 2, semantics.ClassRejected, semantics.ErrRejected},
		{"undecodable args", func(*fixture) {}, "Echo.Double", "not an int", semantics.ClassRejected, semantics.ErrRejected},
		{"application error", func(*fixture) {}, "Echo.Fail", 2, semantics.ClassApplication, semantics.ErrApplication},
	}
	for i, tt := range tests {
		subtest(t, tt.name, func(t *testing.T) {
			f := newFixture(t, int64(100+i))
			e := f.end("e")
			tt.setup(f)
			var n int
			err := e.RoundTrip(context.Background(), &rpc.Request{ServiceMethod: tt.method, Args: tt.args}, &n)
			if got := semantics.ClassOf(err); got != tt.class {
				t.Fatalf("class %v, want %v (err %v)", got, tt.class, err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("err %v does not wrap %v", err, tt.sentinel)
			}
			if tt.class == semantics.ClassNone && n != 4 {
				t.Errorf("reply %d, want 4", n)
			}
		})
	}
}

func TestContext(t *testing.T) {
	f := newFixture(t, 20)
	f.echo.entered = make(chan struct{}, 1)
	defer close(f.echo.block)
	e := f.end("e")

	// Ends while the handler runs: maybe executed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var n int
	err := e.RoundTrip(ctx, &rpc.Request{ServiceMethod: "Echo.Block", Args: 1}, &n)
	if !errors.Is(err, semantics.ErrMaybeExecuted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx ended during the handler: %v", err)
	}
	<-f.echo.entered

	// Ends during the request's delay: not sent.
	if err := f.net.SetLink("e", LinkConfig{MinDelay: time.Hour, MaxDelay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	start := time.Now()
	err = e.RoundTrip(ctx2, &rpc.Request{ServiceMethod: "Echo.Double", Args: 1}, &n)
	if !errors.Is(err, semantics.ErrNotSent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx ended before delivery: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("RoundTrip did not return promptly when ctx ended")
	}
	ctx3, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if e.CallContext(ctx3, "Echo.Double", 1, &n) {
		t.Error("CallContext with a canceled context succeeded")
	}
}

func TestCleanup(t *testing.T) {
	f := newFixture(t, 21)
	f.echo.entered = make(chan struct{}, 1)
	e := f.end("e")
	result := make(chan bool)
	go func() {
		var n int
		result <- e.Call("Echo.Block", 1, &n)
	}()
	<-f.echo.entered
	f.net.Cleanup()
	within(t, time.Second, "pending call after Cleanup", func() {
		if <-result {
			t.Error("pending call succeeded after Cleanup")
		}
	})
	start := time.Now()
	var n int
	if e.Call("Echo.Double", 1, &n) {
		t.Error("Call after Cleanup succeeded")
	}
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("Call after Cleanup took %v, want at once", d)
	}
	f.net.Cleanup() // idempotent
	close(f.echo.block)
}

func TestBadArgsLogAndFailButHandlerErrorsDoNotLog(t *testing.T) {
	buf := captureLog(t)
	f := newFixture(t, 22)
	e := f.end("e")
	var n int
	if e.Call("Echo.Double", PairArgs{X: 1}, &n) {
		t.Error("undecodable args succeeded")
	}
	if e.Call("Echo.Fail", 1, &n) || n != 0 {
		t.Errorf("handler error: Call true or reply touched (%d)", n)
	}
	out := buf.String()
	if !strings.Contains(out, "decoding arguments") || !strings.Contains(out, "Echo.Double") {
		t.Errorf("log lacks the undecodable args:\n%s", out)
	}
	if strings.Contains(out, "asked to fail") {
		t.Errorf("application errors should not be logged:\n%s", out)
	}
	if !e.Call("Echo.Double", 1, &n) || n != 2 {
		t.Error("server stopped serving after bad calls")
	}
}

// The 2025 lab's tester registers a type without RPC methods at every
// server start; the classic network accepted it without a word.
func TestAddServiceWithoutMethodsIsSilentUnlessVerbose(t *testing.T) {
	verbose := flag.Lookup("test.v")
	prev := verbose.Value.String()
	t.Cleanup(func() { verbose.Value.Set(prev) })
	type Empty struct{}
	for _, v := range []string{"false", "true"} {
		if err := verbose.Value.Set(v); err != nil {
			t.Fatal(err)
		}
		buf := captureLog(t)
		srv := MakeServer()
		srv.AddService(MakeService(&Empty{}))
		srv.AddService(MakeService(&Echo{})) // the server still serves its other services
		logged := strings.Contains(buf.String(), "AddService(Empty)")
		if logged != (v == "true") {
			t.Errorf("with -test.v=%s, logged = %v: %q", v, logged, buf.String())
		}
		net := MakeNetwork()
		net.AddServer("s", srv)
		e := net.MakeEnd("c")
		net.Connect("c", "s")
		net.Enable("c", true)
		var n int
		if !e.Call("Echo.Double", 4, &n) || n != 8 {
			t.Errorf("Echo.Double(4) = %d on a server that also holds a service without methods", n)
		}
		net.Cleanup()
	}
}

func TestAddServiceTwiceLogs(t *testing.T) {
	buf := captureLog(t)
	srv := MakeServer()
	srv.AddService(MakeService(&Echo{}))
	srv.AddService(MakeService(&Echo{}))
	if !strings.Contains(buf.String(), "AddService(Echo)") {
		t.Errorf("no log line for a second service of the same name: %q", buf.String())
	}
}

func TestPartition(t *testing.T) {
	f := newFixture(t, 23)
	other := MakeServer()
	other.AddService(MakeService(&Echo{}))
	f.net.AddServer("t", other)
	a := f.end("a") // → s
	b := f.net.MakeEnd("b")
	f.net.Connect("b", "t")
	f.net.Enable("b", true)
	c := f.end("c") // → s, in no group

	f.net.Partition([]interface{}{"a", "t"}, []interface{}{"b", "s"})
	var n int
	if a.Call("Echo.Double", 1, &n) {
		t.Error("a reached s across the partition")
	}
	if b.Call("Echo.Double", 1, &n) {
		t.Error("b reached t across the partition")
	}
	if !c.Call("Echo.Double", 1, &n) {
		t.Error("an end in no group was cut")
	}
	f.net.Partition([]interface{}{"a", "s"}, []interface{}{"b", "t"})
	if !a.Call("Echo.Double", 1, &n) || !b.Call("Echo.Double", 1, &n) {
		t.Error("calls within a group failed")
	}
	f.net.Partition([]interface{}{"a"}, []interface{}{"s"})
	f.net.Heal()
	if !a.Call("Echo.Double", 1, &n) {
		t.Error("call failed after Heal")
	}
}

func TestSetLink(t *testing.T) {
	f := newFixture(t, 24)
	e := f.end("e")
	if err := f.net.SetLink("e", LinkConfig{DropRequest: 1}); err != nil {
		t.Fatal(err)
	}
	var n int
	for i := 0; i < 5; i++ {
		if e.Call("Echo.Double", 1, &n) {
			t.Error("call succeeded with DropRequest 1")
		}
	}
	if got := f.echo.calls.Load(); got != 0 {
		t.Errorf("handler ran %d times for dropped requests", got)
	}
	_ = f.net.SetLink("e", LinkConfig{DropReply: 1})
	if e.Call("Echo.Double", 1, &n) {
		t.Error("call succeeded with DropReply 1")
	}
	if got := f.echo.calls.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1 (reply dropped after it ran)", got)
	}
	f.net.ClearLink("e")
	if !e.Call("Echo.Double", 1, &n) {
		t.Error("call failed after ClearLink on a reliable network")
	}
	for _, bad := range []LinkConfig{{DropRequest: -0.1}, {DropReply: 1.5}, {MinDelay: 2, MaxDelay: 1}, {MinDelay: -1}} {
		if err := f.net.SetLink("e", bad); err == nil {
			t.Errorf("SetLink(%+v) accepted", bad)
		}
	}
}

func TestTraceRecordsEachCallStartAndEndingOnce(t *testing.T) {
	f := newFixture(t, 25)
	e := f.end("e")
	var n int
	e.Call("Echo.Double", 1, &n)
	if len(f.net.Trace()) != 0 {
		t.Error("events recorded while the trace was off")
	}
	f.net.EnableTrace(true)
	e.Call("Echo.Double", 1, &n)
	f.net.Enable("e", false)
	e.Call("Echo.Double", 1, &n)
	got := fates(f.net.Trace())
	want := []string{
		"e/2/Echo.Double/sent/0s", "e/2/Echo.Double/replied/0s/dup=false/0s",
		"topology/Enable(e, false)",
		"e/3/Echo.Double/sent/0s",
	}
	if len(got) != 5 || strings.Join(got[:4], ",") != strings.Join(want, ",") || !strings.HasPrefix(got[4], "e/3/Echo.Double/disconnected/") {
		t.Errorf("trace:\n%s", strings.Join(got, "\n"))
	}
	tr := f.net.Trace()
	if end := tr[1]; !end.Reached || end.Sent != tr[0].At || end.Delivered < end.Sent || end.At < end.Delivered {
		t.Errorf("ending %+v does not place the call in time after its start %+v", end, tr[0])
	}
	s := f.net.TraceString()
	if !strings.Contains(s, "seed 25") || !strings.Contains(s, "replied") || !strings.Contains(s, "-> s") || !strings.Contains(s, "Enable(e, false)") {
		t.Errorf("TraceString:\n%s", s)
	}
	// Bounded.
	f.net.Enable("e", true)
	for i := 0; i < DefaultTraceSize/2+10; i++ {
		e.Call("Echo.Double", 1, &n)
	}
	tr = f.net.Trace()
	if len(tr) != DefaultTraceSize {
		t.Fatalf("trace holds %d events, want %d", len(tr), DefaultTraceSize)
	}
	for i := 1; i < len(tr); i++ {
		if tr[i].Seq != tr[i-1].Seq+1 {
			t.Fatalf("trace out of order at %d: %d after %d", i, tr[i].Seq, tr[i-1].Seq)
		}
	}
}

type Lower struct {
	Term int
	vote bool
}

func (e *Echo) Lower(args Lower, reply *Lower) {
	reply.Term = args.Term
}

func TestLabgobChecksInCall(t *testing.T) {
	captureLog(t)
	var mu sync.Mutex
	var warnings []string
	gobcheckHandler(t, func(m string) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, m)
	})
	f := newFixture(t, 26)
	e := f.end("e")
	// The classic pitfall, kept for fidelity: gob does not send zero
	// fields, so a reply variable reused from an earlier call keeps them.
	reply := PairReply{Sum: 7}
	if !e.Call("Echo.Add", PairArgs{}, &reply) {
		t.Fatal("call failed")
	}
	if reply.Sum != 7 || reply.Text != "0+0" {
		t.Errorf("reply %+v, want the stale Sum 7 kept and Text 0+0", reply)
	}
	var lr Lower
	if !e.Call("Echo.Lower", Lower{Term: 1, vote: true}, &lr) || lr.Term != 1 {
		t.Errorf("Lower: %+v", lr)
	}
	mu.Lock()
	all := strings.Join(warnings, "\n")
	mu.Unlock()
	if !strings.Contains(all, "PairReply.Sum") || !strings.Contains(all, "may not work") || !strings.Contains(all, "won't be sent") {
		t.Errorf("warnings:\n%s", all)
	}

	gobcheck.SetStrict(true)
	defer gobcheck.SetStrict(false)
	before := f.echo.calls.Load()
	if e.Call("Echo.Lower", Lower{Term: 1}, &Lower{}) {
		t.Error("strict mode: call with a lower-case field succeeded")
	}
	if f.echo.calls.Load() != before {
		t.Error("strict mode: the handler ran")
	}
}

func TestDefaultsWithoutSeed(t *testing.T) {
	t.Setenv(SeedEnv, "1234")
	net := MakeNetwork()
	defer net.Cleanup()
	if net.Seed() != 1234 || !net.IsReliable() || net.IsLongDelays() {
		t.Errorf("MakeNetwork: seed %d reliable %v long delays %v", net.Seed(), net.IsReliable(), net.IsLongDelays())
	}
}

func TestDeleteEnd(t *testing.T) {
	f := newFixture(t, 27)
	e := f.end("e")
	f.net.DeleteEnd("e")
	var n int
	if e.Call("Echo.Double", 1, &n) {
		t.Error("call on a deleted end succeeded")
	}
	f.end("e") // the name can be used again
	defer func() {
		if recover() == nil {
			t.Error("MakeEnd of an existing name did not panic")
		}
	}()
	f.net.MakeEnd("e")
}

// gobcheckHandler installs a warning handler for the rest of the test.
func gobcheckHandler(t *testing.T, f func(string)) {
	gobcheck.SetHandler(f)
	t.Cleanup(func() { gobcheck.SetHandler(nil) })
}

// A DeleteServer, replacement, Enable(false) or Partition made while a
// request is still delayed on the wire releases its caller at once, the
// call failed: the call watches for changes from the start, not only once
// the request's delay is over. (Watching only after the delay, the request
// reached the old server anyway, and with a handler that never returns, a
// killed Raft peer blocked on its lock, the caller hung until the next,
// unrelated change.)
func TestChangeWhileARequestIsDelayedReleasesItsCaller(t *testing.T) {
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

// Lab harnesses name their ends with random strings; a run must replay
// from its seed all the same.
func TestSeedReplaysWithRandomEndNames(t *testing.T) {
	run := func(names *rand.Rand) string {
		net := MakeNetworkSeed(42)
		defer net.Cleanup()
		net.EnableTrace(true)
		net.Reliable(false)
		srv := MakeServer()
		srv.AddService(MakeService(&compatRaft{}))
		net.AddServer("s", srv)
		var fates []bool
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("end-%d", names.Int63())
			end := net.MakeEnd(name)
			net.Connect(name, "s")
			net.Enable(name, true)
			for j := 0; j < 40; j++ {
				var reply compatVoteReply
				fates = append(fates, end.Call("compatRaft.RequestVote", &compatVoteArgs{Term: j}, &reply))
			}
		}
		return fmt.Sprint(fates)
	}
	a := run(rand.New(rand.NewSource(1)))
	b := run(rand.New(rand.NewSource(2))) // other names, same seed, same order
	if a != b {
		t.Fatalf("same seed, same order of ends and calls, different names: fates differ\n%s\n%s", a, b)
	}
}
