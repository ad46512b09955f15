package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is one proxied connection: a client socket, a server socket and two
// pipes, each a reader goroutine and a writer goroutine joined by a queue.
type conn struct {
	p      *Proxy
	index  uint64 // position in accept order; selects the random streams
	client *net.TCPConn
	done   chan struct{} // closed by kill

	mu     sync.Mutex // protects following
	server *net.TCPConn
	dead   bool
	ended  int // directions that reached end of stream cleanly
}

func newConn(p *Proxy, index uint64, client *net.TCPConn) *conn {
	return &conn{p: p, index: index, client: client, done: make(chan struct{})}
}

// run dials the target and forwards until the connection dies.
func (c *conn) run() {
	defer c.p.wg.Done()
	defer c.p.untrack(c)

	d := net.Dialer{Timeout: c.p.dialTimeout}
	nc, err := d.DialContext(c.p.ctx, "tcp", c.p.target)
	if err != nil {
		c.p.stats.dialFailed.Add(1)
		c.kill(true) // the client sees a reset, as from a refused dial
		return
	}
	server := nc.(*net.TCPConn)
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		_ = server.Close()
		return
	}
	c.server = server
	c.mu.Unlock()

	up := c.newPipe(0, c.client, server, &c.p.upstream, &c.p.stats.upstream)
	down := c.newPipe(1, server, c.client, &c.p.downstream, &c.p.stats.downstream)
	var wg sync.WaitGroup
	wg.Add(4)
	for _, pp := range []*pipe{up, down} {
		go func() { defer wg.Done(); pp.read() }()
		go func() { defer wg.Done(); pp.write() }()
	}
	wg.Wait()
	c.kill(false)
}

// kill closes both sockets, with RST if rst is set, and wakes every goroutine
// of the connection. Only the first call has an effect; it reports whether
// this call was the one.
func (c *conn) kill(rst bool) bool { return c.close(rst, false) }

// killByFault kills the connection on a fault's decision and counts it.
func (c *conn) killByFault(rst bool) { c.close(rst, true) }

func (c *conn) close(rst, byFault bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return false
	}
	c.dead = true
	if byFault {
		// Count before closing, so a peer that sees the close sees it counted.
		c.p.stats.killed.Add(1)
		if rst {
			c.p.stats.resets.Add(1)
		}
	}
	for _, nc := range []*net.TCPConn{c.client, c.server} {
		if nc == nil {
			continue
		}
		if rst {
			_ = nc.SetLinger(0)
		}
		_ = nc.Close()
	}
	close(c.done)
	return true
}

// directionEnded records a clean end of stream; after both, the connection
// is closed.
func (c *conn) directionEnded() {
	c.mu.Lock()
	c.ended++
	both := c.ended == 2
	c.mu.Unlock()
	if both {
		c.kill(false)
	}
}

// sleepUntil waits until t and reports false if the connection died first.
func (c *conn) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-c.done:
		return false
	}
}

// pipe forwards one direction of a connection. The reader makes every fault
// decision, in chunk order, and queues what survives; the writer waits out
// delays and bandwidth, then writes.
type pipe struct {
	c        *conn
	src, dst *net.TCPConn
	faults   *atomic.Pointer[Faults]
	stats    *directionCounters
	rng      *rand.Rand // used by the reader only
	queue    chan chunk
}

// chunk is what one Read returned, on its way to the writer.
type chunk struct {
	data      []byte
	release   time.Time // not before; zero means now
	eof       bool      // end of stream: half-close dst
	killAfter bool      // DropAfterBytes reached: kill once written
	rst       bool      // kill with RST
}

func (c *conn) newPipe(dir uint64, src, dst *net.TCPConn, faults *atomic.Pointer[Faults], stats *directionCounters) *pipe {
	return &pipe{
		c:      c,
		src:    src,
		dst:    dst,
		faults: faults,
		stats:  stats,
		rng:    newRand(c.p.seed, 2*c.index+dir),
		queue:  make(chan chunk, queueDepth),
	}
}

func (pp *pipe) read() {
	buf := make([]byte, pp.c.p.chunkSize)
	var queued int64 // bytes handed to the writer so far
	for {
		n, err := pp.src.Read(buf)
		if n > 0 && !pp.decide(buf[:n], &queued) {
			return
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			if !pp.faults.Load().Blackhole {
				pp.send(chunk{eof: true})
			}
			return
		}
		// Pass a reset from one peer on to the other; anything else (the
		// socket closed by kill, say) just closes.
		pp.c.kill(errors.Is(err, syscall.ECONNRESET))
		return
	}
}

// decide applies the faults to one chunk and queues what is left of it. It
// reports false when the reader should stop.
func (pp *pipe) decide(data []byte, queued *int64) bool {
	now := time.Now()
	// Draw the same numbers for every chunk, whatever the faults, so that
	// chunk k's decisions depend only on the seed, the connection and k.
	dropDraw, resetDraw, jitterDraw := pp.rng.Float64(), pp.rng.Float64(), pp.rng.Uint64()
	f := pp.faults.Load()
	if f.Blackhole {
		pp.stats.blackholed.Add(int64(len(data)))
		return true
	}
	rst := resetDraw < f.Reset
	if dropDraw < f.Drop {
		pp.c.killByFault(rst)
		return false
	}
	var ch chunk
	if f.DropAfterBytes > 0 {
		left := f.DropAfterBytes - *queued
		if left <= 0 {
			pp.c.killByFault(rst)
			return false
		}
		if int64(len(data)) >= left {
			data = data[:left]
			ch.killAfter, ch.rst = true, rst
		}
	}
	delay := f.Delay
	if f.Jitter > 0 {
		delay += time.Duration(jitterDraw % uint64(f.Jitter))
	}
	if delay > 0 {
		ch.release = now.Add(delay)
		pp.stats.delayed.Add(1)
	}
	ch.data = bytes.Clone(data)
	*queued += int64(len(data))
	return pp.send(ch) && !ch.killAfter
}

// send queues ch for the writer, reporting false if the connection died.
func (pp *pipe) send(ch chunk) bool {
	select {
	case pp.queue <- ch:
		return true
	case <-pp.c.done:
		return false
	}
}

func (pp *pipe) write() {
	var next time.Time // bandwidth pacing: earliest time of the next write
	for {
		var ch chunk
		select {
		case ch = <-pp.queue:
		case <-pp.c.done:
			return
		}
		if ch.eof {
			if err := pp.dst.CloseWrite(); err != nil {
				pp.c.kill(false)
				return
			}
			pp.c.directionEnded()
			return
		}
		if !ch.release.IsZero() && !pp.c.sleepUntil(ch.release) {
			return
		}
		if !pp.writeChunk(ch.data, &next) {
			return
		}
		if ch.killAfter {
			pp.c.killByFault(ch.rst)
			return
		}
	}
}

// writeChunk writes data, in slices paced to the bandwidth limit if there is
// one. The limit is read before each slice so a change applies at once.
func (pp *pipe) writeChunk(data []byte, next *time.Time) bool {
	for len(data) > 0 {
		bw := pp.faults.Load().Bandwidth
		n := len(data)
		if bw > 0 {
			// About ten slices a second keeps the pacing smooth.
			n = min(n, max(1, bw/10))
			if !pp.c.sleepUntil(*next) {
				return false
			}
		}
		// Count before writing, so a peer that has the bytes sees them
		// counted; take back what was not written.
		pp.stats.bytes.Add(int64(n))
		last := n == len(data)
		if last {
			pp.stats.chunks.Add(1)
		}
		written, err := pp.dst.Write(data[:n])
		if err != nil {
			pp.stats.bytes.Add(int64(written - n))
			if last {
				pp.stats.chunks.Add(-1)
			}
			pp.c.kill(errors.Is(err, syscall.ECONNRESET))
			return false
		}
		if bw > 0 {
			now := time.Now()
			if next.Before(now) {
				*next = now
			}
			*next = next.Add(time.Duration(n) * time.Second / time.Duration(bw))
		}
		data = data[n:]
	}
	return true
}

// newRand returns the random stream numbered stream under seed. Streams are
// derived through splitmix64 so that neighbouring seeds and streams are
// unrelated.
func newRand(seed int64, stream uint64) *rand.Rand {
	s1 := splitmix64(uint64(seed) ^ splitmix64(stream))
	return rand.New(rand.NewPCG(s1, splitmix64(s1)))
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
