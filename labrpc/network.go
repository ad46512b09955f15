package labrpc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
	"github.com/semrpc/semrpc/rpc"
)

// SeedEnv names the environment variable MakeNetwork reads its seed from,
// so a failing run can be replayed without changing the test.
const SeedEnv = "LABRPC_SEED"

// Network is a simulated network of client ends and servers. The zero value
// is not usable; make one with MakeNetwork or MakeNetworkSeed.
type Network struct {
	seed   int64
	start  time.Time
	done   chan struct{}   // closed by Cleanup; every wait selects on it
	ctx    context.Context // handed to the server core; canceled by Cleanup
	cancel context.CancelFunc
	// crashCtx is ctx for ClientEnd.Call's requests: a handler's panic
	// crashes the program, as in the classic network.
	crashCtx context.Context
	bubble   uint64 // the synctest bubble the network was made in; 0 for none

	mu             sync.RWMutex // protects following
	closed         bool
	endsMade       uint64 // MakeEnd calls so far: each end's generator index
	reliable       bool
	longDelays     bool
	longReordering bool
	dupRate        float64
	latency        time.Duration // the least time any message takes
	ends           map[interface{}]*ClientEnd
	enabled        map[interface{}]bool
	connections    map[interface{}]interface{} // endname → servername
	servers        map[interface{}]*Server
	links          map[interface{}]LinkConfig
	groups         map[interface{}]int    // partition groups; nil when healed
	endGen         map[interface{}]uint64 // bumped when an end is disabled, deleted or cut off
	serverGen      map[interface{}]uint64 // bumped when a server name is deleted or replaced
	changed        chan struct{}          // closed and replaced on every topology change
	work           chan job               // hands requests to idle workers
	bg             sync.WaitGroup         // the network's own goroutines; Add only while !closed

	deliveries sync.Pool // of *delivery, reused by calls (end.go)

	idle  atomic.Int32 // workers waiting for work
	count atomic.Int64 // calls made
	bytes atomic.Int64 // args sent plus replies delivered
	trace tracer
}

// A network made during a labtest run registers itself with it.
var _ labhook.Network = (*Network)(nil)

// MakeNetwork returns a reliable network with no ends and no servers. Its
// seed comes from the LABRPC_SEED environment variable if set, else it is
// random; Seed reports it.
func MakeNetwork() *Network {
	if s, err := strconv.ParseInt(os.Getenv(SeedEnv), 10, 64); err == nil {
		return MakeNetworkSeed(s)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return MakeNetworkSeed(time.Now().UnixNano())
	}
	return MakeNetworkSeed(int64(binary.LittleEndian.Uint64(b[:])))
}

// MakeNetworkSeed is MakeNetwork with a chosen seed. Every random decision
// (delays, drops, duplicates, reordering) is drawn from a generator per end,
// derived from the seed and the end's place in the order of MakeEnd calls
// (not its name: lab harnesses name ends with random strings), so the same
// seed, the same order of MakeEnd and the same order of calls on each end
// give the same faults.
//
// Under labtest the network registers itself with the test's run and
// starts with its trace on, so that a failing test's timeline can be
// written, and every message takes at least the run's per-message latency
// (see SetLatency).
func MakeNetworkSeed(seed int64) *Network {
	ctx, cancel := context.WithCancel(context.Background())
	n := &Network{
		seed:        seed,
		start:       time.Now(),
		done:        make(chan struct{}),
		ctx:         ctx,
		cancel:      cancel,
		crashCtx:    rpc.PropagatePanics(ctx),
		bubble:      currentBubble(),
		reliable:    true,
		ends:        make(map[interface{}]*ClientEnd),
		enabled:     make(map[interface{}]bool),
		connections: make(map[interface{}]interface{}),
		servers:     make(map[interface{}]*Server),
		links:       make(map[interface{}]LinkConfig),
		endGen:      make(map[interface{}]uint64),
		serverGen:   make(map[interface{}]uint64),
		changed:     make(chan struct{}),
		work:        make(chan job),
	}
	if run := labhook.Current(); run != nil {
		n.latency = max(run.Latency, 0)
		n.trace.on.Store(true) // for the timeline of a failing test
		run.Register(n)
	}
	return n
}

// Seed returns the seed the network's faults are drawn from.
func (n *Network) Seed() int64 { return n.seed }

// Cleanup shuts the network down: calls in progress return false (or an
// error) at once, later calls fail without delay, and every goroutine and
// timer the network started is gone when Cleanup returns. A handler still
// running in user code finishes on its own; its reply is discarded.
func (n *Network) Cleanup() {
	n.checkBubble("Cleanup")
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.done)
	n.cancel()
	n.mu.Unlock()
	n.bg.Wait()
}

// changedLocked wakes every call waiting on a handler so that it re-checks
// whether its server is still reachable. n.mu must be held for writing,
// and the caller must have checked the bubble (the channels belong to it).
func (n *Network) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// Reliable sets whether the network is reliable. An unreliable network
// delays each request 0–26 ms and loses 10% of requests and 10% of replies.
func (n *Network) Reliable(yes bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reliable = yes
	n.topology("Reliable(%v)", yes)
}

// IsReliable reports whether the network is reliable.
func (n *Network) IsReliable() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.reliable
}

// LongReordering sets whether replies may be held back: two in three are
// delayed by 200 ms to 2.2 s, skewed towards the short end.
func (n *Network) LongReordering(yes bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.longReordering = yes
	n.topology("LongReordering(%v)", yes)
}

// LongDelays sets how long a call that cannot be delivered takes to fail:
// up to 7 s instead of up to 100 ms.
func (n *Network) LongDelays(yes bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.longDelays = yes
	n.topology("LongDelays(%v)", yes)
}

// IsLongDelays reports whether long delays are on.
func (n *Network) IsLongDelays() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.longDelays
}

// Duplicate sets the probability (clamped to [0, 1]) that a request is
// delivered twice, on ends without their own LinkConfig. For a plain call
// the handler then runs twice; a call carrying an at-most-once header is
// answered from the server core's table the second time. The caller gets
// the first delivery's reply.
func (n *Network) Duplicate(rate float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dupRate = min(max(rate, 0), 1)
	n.topology("Duplicate(%v)", n.dupRate)
}

// SetLatency sets the least time every message takes: a request reaches
// its server, and a reply its caller, no sooner than d after it left (a
// link's own delays still apply when longer). The default is 0, or the
// latency of the labtest run the network was made in: in virtual time a
// loop bounded by elapsed time ends only if messages take time.
func (n *Network) SetLatency(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.latency = max(d, 0)
	n.topology("SetLatency(%v)", n.latency)
}

// SetLink gives an end its own fault rates and delays, replacing the
// network-wide defaults for calls made on it from now on.
func (n *Network) SetLink(endname interface{}, cfg LinkConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[endname] = cfg
	n.topology("SetLink(%v, %+v)", endname, cfg)
	return nil
}

// ClearLink returns an end to the network-wide defaults.
func (n *Network) ClearLink(endname interface{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.links, endname)
	n.topology("ClearLink(%v)", endname)
}

// Partition splits the network: each argument is a group of server names
// and end names. An end and a server placed in different groups cannot
// reach each other (calls behave as on a disabled end, and replies not yet
// delivered are lost); names in no group are not affected. A new Partition
// replaces the previous one.
func (n *Network) Partition(groups ...[]interface{}) {
	n.checkBubble("Partition")
	g := make(map[interface{}]int)
	for i, group := range groups {
		for _, name := range group {
			g[name] = i
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = g
	for end, server := range n.connections {
		if n.cutLocked(end, server) {
			n.endGen[end]++
		}
	}
	n.changedLocked()
	n.topology("Partition%v", groups)
}

// Heal removes the partition.
func (n *Network) Heal() {
	n.checkBubble("Heal")
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = nil
	n.changedLocked()
	n.topology("Heal()")
}

// MakeEnd creates a client end, disabled and unconnected. It panics if an
// end with that name exists, as the classic network did.
func (n *Network) MakeEnd(endname interface{}) *ClientEnd {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.ends[endname]; ok {
		panic(fmt.Sprintf("labrpc: MakeEnd: %v already exists", endname))
	}
	n.endsMade++
	e := &ClientEnd{endname: endname, net: n, rng: endRand(n.seed, n.endsMade)}
	n.ends[endname] = e
	n.enabled[endname] = false
	delete(n.connections, endname)
	n.topology("MakeEnd(%v)", endname)
	return e
}

// DeleteEnd removes an end: its calls in progress lose their replies and
// later calls on it fail as if it were disabled.
func (n *Network) DeleteEnd(endname interface{}) {
	n.checkBubble("DeleteEnd")
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.ends, endname)
	delete(n.enabled, endname)
	delete(n.connections, endname)
	delete(n.links, endname)
	n.endGen[endname]++
	n.changedLocked()
	n.topology("DeleteEnd(%v)", endname)
}

// AddServer adds a server under a name, replacing any server of that name:
// the replaced server never delivers another reply.
func (n *Network) AddServer(servername interface{}, rs *Server) {
	n.checkBubble("AddServer")
	n.mu.Lock()
	defer n.mu.Unlock()
	n.servers[servername] = rs
	n.serverGen[servername]++
	n.changedLocked()
	n.topology("AddServer(%v)", servername)
}

// DeleteServer removes a server: it never delivers another reply, even for
// handlers that finish later, and callers waiting on it are released.
func (n *Network) DeleteServer(servername interface{}) {
	n.checkBubble("DeleteServer")
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.servers, servername)
	n.serverGen[servername]++
	n.changedLocked()
	n.topology("DeleteServer(%v)", servername)
}

// Connect connects an end to a server name. The server need not exist yet.
func (n *Network) Connect(endname, servername interface{}) {
	n.checkBubble("Connect")
	n.mu.Lock()
	defer n.mu.Unlock()
	n.connections[endname] = servername
	n.changedLocked()
	n.topology("Connect(%v, %v)", endname, servername)
}

// Enable enables or disables an end. A disabled end delivers nothing, and
// calls in progress on it lose their replies.
func (n *Network) Enable(endname interface{}, enabled bool) {
	n.checkBubble("Enable")
	n.mu.Lock()
	defer n.mu.Unlock()
	n.enabled[endname] = enabled
	if !enabled {
		n.endGen[endname]++
	}
	n.changedLocked()
	n.topology("Enable(%v, %v)", endname, enabled)
}

// GetCount returns how many requests the named server has received
// (duplicates included), or 0 if there is no such server.
func (n *Network) GetCount(servername interface{}) int {
	n.mu.RLock()
	rs := n.servers[servername]
	n.mu.RUnlock()
	if rs == nil {
		return 0
	}
	return rs.GetCount()
}

// GetTotalCount returns how many calls have been made on all ends,
// delivered or not.
func (n *Network) GetTotalCount() int { return int(n.count.Load()) }

// GetTotalBytes returns the gob-encoded size of all arguments sent (each
// delivery of a duplicate counted again) plus all replies delivered, as a
// fresh gob encoder per message would have produced them.
func (n *Network) GetTotalBytes() int64 { return n.bytes.Load() }

// route is what a call needs to know about its end at the start.
type route struct {
	servername     interface{}
	server         *Server // nil if the call cannot be delivered
	link           LinkConfig
	longDelays     bool
	longReordering bool
	latency        time.Duration
	closed         bool
	endGen         uint64 // generations at the start, for dead
	serverGen      uint64
	changed        <-chan struct{} // closed at the first change after the start
}

func (n *Network) route(endname interface{}) route {
	n.mu.RLock()
	defer n.mu.RUnlock()
	r := route{
		servername:     n.connections[endname],
		longDelays:     n.longDelays,
		longReordering: n.longReordering,
		latency:        n.latency,
		closed:         n.closed,
		endGen:         n.endGen[endname],
		changed:        n.changed,
	}
	if r.servername != nil {
		r.serverGen = n.serverGen[r.servername]
	}
	if n.enabled[endname] && r.servername != nil && !n.cutLocked(endname, r.servername) {
		r.server = n.servers[r.servername]
	}
	if cfg, ok := n.links[endname]; ok {
		r.link = cfg
	} else {
		if !n.reliable {
			r.link = unreliableLink
		}
		r.link.Duplicate = n.dupRate
	}
	return r
}

// cutLocked reports whether a partition separates the end from the server.
func (n *Network) cutLocked(endname, servername interface{}) bool {
	if n.groups == nil {
		return false
	}
	ge, ok1 := n.groups[endname]
	gs, ok2 := n.groups[servername]
	return ok1 && ok2 && ge != gs
}

// dead reports whether a reply on rt must be suppressed: since the call
// started, the end was disabled, deleted or cut off by a partition (even if
// it has been enabled again), or its server deleted or replaced. It also
// returns the channel that will be closed at the next change.
func (n *Network) dead(endname interface{}, rt *route) (bool, <-chan struct{}) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	dead := !n.enabled[endname] || n.servers[rt.servername] != rt.server ||
		n.cutLocked(endname, rt.servername) ||
		n.endGen[endname] != rt.endGen || n.serverGen[rt.servername] != rt.serverGen
	return dead, n.changed
}

// goBackground runs f on a goroutine that Cleanup waits for, unless the
// network is already cleaned up.
func (n *Network) goBackground(f func()) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return false
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		f()
	}()
	return true
}

// now is the time since the network was made.
func (n *Network) now() time.Duration { return time.Since(n.start) }

// sleep waits d, or until ctx ends or the network is cleaned up; it returns
// the reason it stopped early, or nil.
func (n *Network) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		select {
		case <-n.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		default:
			return nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-n.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}
