// Package tester is this toy lab's tester, in the shape of the 2025
// course's tester1: it owns the network, gives each server a fresh set of
// ends under random names at every start, and registers the services that
// the lab's code hands it, whatever they are.
package tester

import (
	crand "crypto/rand"
	"encoding/base64"
	"sync"
	"testing"
	"time"

	"6.5840/labrpc"
)

// Randstring returns a random end name, as the course's tester makes them.
func Randstring(n int) string {
	b := make([]byte, 2*n)
	crand.Read(b)
	return base64.URLEncoding.EncodeToString(b)[:n]
}

// IService is a service a server exports: any value; the network finds its
// RPC methods, if it has any.
type IService interface{}

// FstartServer starts server me of a group, talking to the others through
// ends, and returns the services it exports.
type FstartServer func(ends []*labrpc.ClientEnd, me int) []IService

// Config is one test's network and servers.
type Config struct {
	mu        sync.Mutex // protects connected and ends
	t         *testing.T
	net       *labrpc.Network
	n         int
	start     FstartServer
	connected []bool
	ends      [][]string // ends[i][j]: the name of server i's end to server j
	services  [][]IService
	began     time.Time
}

// MakeConfig starts n servers on a network that is reliable or not.
func MakeConfig(t *testing.T, n int, reliable bool, start FstartServer) *Config {
	cfg := &Config{t: t, net: labrpc.MakeNetwork(), n: n, start: start,
		connected: make([]bool, n), ends: make([][]string, n), services: make([][]IService, n)}
	cfg.net.Reliable(reliable)
	for i := 0; i < n; i++ {
		cfg.StartServer(i)
	}
	for i := 0; i < n; i++ {
		cfg.Connect(i)
	}
	return cfg
}

// ServerName is server i's name on the network.
func ServerName(i int) string { return "server-" + string(rune('0'+i)) }

// StartServer starts server i with fresh ends, under fresh random names.
func (cfg *Config) StartServer(i int) {
	names := make([]string, cfg.n)
	ends := make([]*labrpc.ClientEnd, cfg.n)
	for j := range ends {
		names[j] = Randstring(20)
		ends[j] = cfg.net.MakeEnd(names[j])
		cfg.net.Connect(names[j], ServerName(j))
	}
	svcs := cfg.start(ends, i)
	srv := labrpc.MakeServer()
	for _, svc := range svcs {
		srv.AddService(labrpc.MakeService(svc))
	}
	cfg.net.AddServer(ServerName(i), srv)
	cfg.mu.Lock()
	cfg.ends[i] = names
	cfg.services[i] = svcs
	cfg.mu.Unlock()
}

// Services returns what server i exports.
func (cfg *Config) Services(i int) []IService {
	cfg.mu.Lock()
	defer cfg.mu.Unlock()
	return cfg.services[i]
}

// Connect attaches server i to the others, both ways.
func (cfg *Config) Connect(i int) { cfg.setConnected(i, true) }

// Disconnect detaches server i from the others, both ways.
func (cfg *Config) Disconnect(i int) { cfg.setConnected(i, false) }

func (cfg *Config) setConnected(i int, on bool) {
	cfg.mu.Lock()
	defer cfg.mu.Unlock()
	cfg.connected[i] = on
	for j := 0; j < cfg.n; j++ {
		if j == i || !cfg.connected[j] {
			continue
		}
		cfg.net.Enable(cfg.ends[i][j], on)
		cfg.net.Enable(cfg.ends[j][i], on)
	}
	cfg.net.Enable(cfg.ends[i][i], on)
}

// IsConnected reports whether server i is attached.
func (cfg *Config) IsConnected(i int) bool {
	cfg.mu.Lock()
	defer cfg.mu.Unlock()
	return cfg.connected[i]
}

// Fatalf fails the test, as the course's tester does: a printf wrapper,
// which vet checks as it checks t.Fatalf.
func (cfg *Config) Fatalf(format string, args ...any) {
	cfg.t.Helper()
	cfg.t.Fatalf(format, args...)
}

// Begin starts a part of the test.
func (cfg *Config) Begin(desc string) {
	cfg.began = time.Now()
	cfg.t.Logf("Test: %s ...", desc)
}

// End reports the part's time.
func (cfg *Config) End() {
	cfg.t.Logf("  ... Passed (%v)", time.Since(cfg.began).Round(time.Millisecond))
}

// Cleanup stops the network.
func (cfg *Config) Cleanup() { cfg.net.Cleanup() }
