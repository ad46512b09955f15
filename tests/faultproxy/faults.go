package faultproxy

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalid is wrapped by every error that New, SetUpstream, SetDownstream
// and SetDropNew return for settings out of range.
var ErrInvalid = errors.New("faultproxy: invalid settings")

// defaultDialTimeout bounds how long the proxy waits to reach the target.
const defaultDialTimeout = 5 * time.Second

// defaultChunkSize is the largest chunk one Read hands to the fault logic.
const defaultChunkSize = 32 << 10

// queueDepth bounds the chunks held per direction between reading and
// forwarding (they wait there for Delay and Bandwidth), so a connection never
// buffers more than about queueDepth*ChunkSize bytes per direction.
const queueDepth = 8

// Faults are the faults the proxy injects into one direction of every
// connection. The zero value injects nothing. A Faults value is copied when it
// is installed, so changing a Faults variable afterwards has no effect.
//
// Random decisions are made per chunk, where a chunk is the data one Read on
// the source socket returns (see the package comment).
type Faults struct {
	// Drop is the probability, per chunk, of killing the connection (both
	// sides closed) before that chunk, or anything still queued behind a
	// delay, is forwarded. On upstream the server never sees the chunk; on
	// downstream the server has done its work and the client loses the reply.
	Drop float64

	// Reset is the probability that a kill caused by Drop or DropAfterBytes
	// closes both sides with RST (SO_LINGER 0) instead of FIN, so peers read
	// ECONNRESET rather than EOF. On its own it injects nothing.
	Reset float64

	// DropAfterBytes, when positive, kills the connection as soon as that many
	// bytes in total have been forwarded in this direction on it: the peer
	// receives exactly DropAfterBytes bytes, then the connection is closed.
	// The count starts with the connection, not with the change of settings.
	// Unlike Drop it does not depend on how TCP splits the stream into chunks.
	DropAfterBytes int64

	// Delay holds every chunk back this long after it was read. Chunks keep
	// their order; a delayed chunk does not delay the reading of later ones.
	Delay time.Duration

	// Jitter adds a random extra delay in [0, Jitter) to each chunk.
	Jitter time.Duration

	// Blackhole makes the proxy read and discard everything in this
	// direction, end of stream included, so the receiving peer waits forever.
	// Data discarded while blackholed is gone even after Blackhole is turned
	// off.
	Blackhole bool

	// Bandwidth limits forwarding to this many bytes per second, per
	// connection and direction. Zero means unlimited.
	Bandwidth int
}

func (f Faults) validate(dir string) error {
	switch {
	case !isProbability(f.Drop):
		return fmt.Errorf("%w: %s Drop %v is not a probability in [0, 1]", ErrInvalid, dir, f.Drop)
	case !isProbability(f.Reset):
		return fmt.Errorf("%w: %s Reset %v is not a probability in [0, 1]", ErrInvalid, dir, f.Reset)
	case f.DropAfterBytes < 0:
		return fmt.Errorf("%w: %s DropAfterBytes %d is negative", ErrInvalid, dir, f.DropAfterBytes)
	case f.Delay < 0:
		return fmt.Errorf("%w: %s Delay %v is negative", ErrInvalid, dir, f.Delay)
	case f.Jitter < 0:
		return fmt.Errorf("%w: %s Jitter %v is negative", ErrInvalid, dir, f.Jitter)
	case f.Bandwidth < 0:
		return fmt.Errorf("%w: %s Bandwidth %d is negative", ErrInvalid, dir, f.Bandwidth)
	}
	return nil
}

// isProbability reports whether p is in [0, 1]; NaN is not.
func isProbability(p float64) bool { return p >= 0 && p <= 1 }

// Config configures a Proxy. The zero value is a transparent proxy on a
// random loopback port.
type Config struct {
	// ListenAddr is the address the proxy listens on. Empty means
	// "127.0.0.1:0", a free loopback port; Proxy.Addr reports the real one.
	ListenAddr string

	// Seed seeds every random decision. Zero is a seed like any other: two
	// proxies with the same Seed that see the same chunks on the same
	// connections make the same decisions.
	Seed int64

	// Upstream are the initial faults for client→server data.
	Upstream Faults

	// Downstream are the initial faults for server→client data.
	Downstream Faults

	// DropNew is the initial probability that a newly accepted connection
	// is closed at once with RST, before the target is dialled.
	DropNew float64

	// DialTimeout bounds each dial to the target. Zero means 5 s.
	DialTimeout time.Duration

	// ChunkSize is the largest number of bytes one Read returns, and so the
	// largest chunk a fault decision covers. Zero means 32 KiB.
	ChunkSize int
}

func (c *Config) validate() error {
	if err := c.Upstream.validate("upstream"); err != nil {
		return err
	}
	if err := c.Downstream.validate("downstream"); err != nil {
		return err
	}
	switch {
	case !isProbability(c.DropNew):
		return fmt.Errorf("%w: DropNew %v is not a probability in [0, 1]", ErrInvalid, c.DropNew)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: DialTimeout %v is negative", ErrInvalid, c.DialTimeout)
	case c.ChunkSize < 0:
		return fmt.Errorf("%w: ChunkSize %d is negative", ErrInvalid, c.ChunkSize)
	}
	return nil
}
