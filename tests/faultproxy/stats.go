package faultproxy

import "sync/atomic"

// Stats counts what a proxy has done since it started.
type Stats struct {
	// Accepted counts connections accepted from clients, refused ones
	// included.
	Accepted int64
	// Refused counts connections closed at once because of DropNew.
	Refused int64
	// DialFailed counts connections closed because the target could not be
	// reached.
	DialFailed int64
	// Killed counts connections killed by a Drop or DropAfterBytes decision.
	Killed int64
	// Resets counts the kills in Killed that were sent as RST.
	Resets int64
	// Active is the number of connections open right now.
	Active int
	// Upstream counts client→server traffic.
	Upstream DirectionStats
	// Downstream counts server→client traffic.
	Downstream DirectionStats
}

// DirectionStats counts the traffic in one direction, over all connections.
type DirectionStats struct {
	// Bytes counts bytes forwarded.
	Bytes int64
	// Chunks counts chunks forwarded completely.
	Chunks int64
	// Delayed counts chunks held back by Delay or Jitter.
	Delayed int64
	// BlackholedBytes counts bytes read and discarded by Blackhole.
	BlackholedBytes int64
}

// Stats returns a snapshot of the proxy's counters. Each counter is updated
// before a peer can observe what it counts: once a client has seen its
// connection die, Killed includes that kill. Counters are read one by one
// while traffic may flow, so they need not be mutually consistent.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted:   p.stats.accepted.Load(),
		Refused:    p.stats.refused.Load(),
		DialFailed: p.stats.dialFailed.Load(),
		Killed:     p.stats.killed.Load(),
		Resets:     p.stats.resets.Load(),
		Active:     active,
		Upstream:   p.stats.upstream.snapshot(),
		Downstream: p.stats.downstream.snapshot(),
	}
}

type counters struct {
	accepted, refused, dialFailed, killed, resets atomic.Int64
	upstream, downstream                          directionCounters
}

type directionCounters struct {
	bytes, chunks, delayed, blackholed atomic.Int64
}

func (d *directionCounters) snapshot() DirectionStats {
	return DirectionStats{
		Bytes:           d.bytes.Load(),
		Chunks:          d.chunks.Load(),
		Delayed:         d.delayed.Load(),
		BlackholedBytes: d.blackholed.Load(),
	}
}
