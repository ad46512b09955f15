package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy that forwards every accepted connection to one target
// address and injects faults on the way. Its methods are safe for concurrent
// use, including while traffic flows.
type Proxy struct {
	target      string
	seed        int64
	dialTimeout time.Duration
	chunkSize   int
	ln          *net.TCPListener

	upstream   atomic.Pointer[Faults] // never nil; the value is never modified
	downstream atomic.Pointer[Faults] // never nil; the value is never modified
	dropNew    atomic.Uint64          // math.Float64bits of the DropNew probability

	// ctx ends when Close starts; it cancels dials and wakes sleepers.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the proxy starts

	stats counters

	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex // protects following
	conns  map[*conn]struct{}
	closed bool
}

// New starts a proxy that forwards connections to target ("host:port") with
// the faults in cfg. It listens on cfg.ListenAddr, by default a free loopback
// port. The target is dialled once per accepted connection, so it need not be
// up yet. Call Close to stop the proxy.
func New(target string, cfg Config) (*Proxy, error) {
	if target == "" {
		return nil, fmt.Errorf("%w: empty target address", ErrInvalid)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	addr := cfg.ListenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:      target,
		seed:        cfg.Seed,
		dialTimeout: cfg.DialTimeout,
		chunkSize:   cfg.ChunkSize,
		ln:          ln.(*net.TCPListener),
		ctx:         ctx,
		cancel:      cancel,
		conns:       make(map[*conn]struct{}),
	}
	if p.dialTimeout == 0 {
		p.dialTimeout = defaultDialTimeout
	}
	if p.chunkSize == 0 {
		p.chunkSize = defaultChunkSize
	}
	up, down := cfg.Upstream, cfg.Downstream
	p.upstream.Store(&up)
	p.downstream.Store(&down)
	p.dropNew.Store(math.Float64bits(cfg.DropNew))
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr returns the address clients should dial, such as "127.0.0.1:40123".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetUpstream replaces the client→server faults. Chunks read from now on
// get the new faults; chunks already waiting out a delay keep their release
// time.
func (p *Proxy) SetUpstream(f Faults) error {
	if err := f.validate("upstream"); err != nil {
		return err
	}
	p.upstream.Store(&f)
	return nil
}

// SetDownstream replaces the server→client faults, like SetUpstream.
func (p *Proxy) SetDownstream(f Faults) error {
	if err := f.validate("downstream"); err != nil {
		return err
	}
	p.downstream.Store(&f)
	return nil
}

// SetDropNew sets the probability that a newly accepted connection is closed
// at once with RST. Established connections are not affected.
func (p *Proxy) SetDropNew(prob float64) error {
	if !isProbability(prob) {
		return fmt.Errorf("%w: DropNew %v is not a probability in [0, 1]", ErrInvalid, prob)
	}
	p.dropNew.Store(math.Float64bits(prob))
	return nil
}

// Upstream returns the client→server faults in force.
func (p *Proxy) Upstream() Faults { return *p.upstream.Load() }

// Downstream returns the server→client faults in force.
func (p *Proxy) Downstream() Faults { return *p.downstream.Load() }

// DropNew returns the probability of refusing a new connection.
func (p *Proxy) DropNew() float64 { return math.Float64frombits(p.dropNew.Load()) }

// Heal turns every fault off: both directions get the zero Faults and
// DropNew becomes 0. Established connections stay open, but data already
// discarded by a blackhole is not recovered.
func (p *Proxy) Heal() {
	p.upstream.Store(&Faults{})
	p.downstream.Store(&Faults{})
	p.dropNew.Store(math.Float64bits(0))
}

// KillAll closes every current connection (with FIN, on both sides) now.
// The proxy keeps accepting new ones. These closes are not counted in
// Stats.Killed, which counts only kills decided by faults.
func (p *Proxy) KillAll() {
	for _, c := range p.snapshot() {
		c.kill(false)
	}
}

// Close stops listening, closes every proxied connection and waits until
// every goroutine the proxy started has returned. Calling it again returns
// the first call's result.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		if err := p.ln.Close(); err != nil {
			p.closeErr = fmt.Errorf("faultproxy: close listener: %w", err)
		}
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		for _, c := range p.snapshot() {
			c.kill(false)
		}
		p.wg.Wait()
	})
	return p.closeErr
}

// serve accepts connections until the listener is closed.
func (p *Proxy) serve() {
	defer p.wg.Done()
	// DropNew decisions use their own stream, apart from every connection's.
	rng := newRand(p.seed, math.MaxUint64)
	var index uint64
	var pause time.Duration
	for {
		nc, err := p.ln.AcceptTCP()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Probably out of file descriptors: pause rather than spin.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(pause):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		pause = 0
		p.stats.accepted.Add(1)
		// Draw for every connection so the streams stay aligned whatever
		// DropNew was when each connection arrived.
		refuse := rng.Float64() < p.DropNew()
		c := newConn(p, index, nc)
		index++
		if refuse {
			p.stats.refused.Add(1)
			_ = nc.SetLinger(0)
			_ = nc.Close()
			continue
		}
		if !p.track(c) {
			_ = nc.Close()
			return
		}
		p.wg.Add(1)
		go c.run()
	}
}

// track registers c so KillAll and Close can find it; it reports false if
// the proxy is closing.
func (p *Proxy) track(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) snapshot() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	return conns
}
