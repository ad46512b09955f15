package kv

import (
	crand "crypto/rand"
	"encoding/base64"
	"sync"
	"testing"
	"time"

	"6.5840/labrpc"
)

func randstring(n int) string {
	b := make([]byte, 2*n)
	crand.Read(b)
	return base64.URLEncoding.EncodeToString(b)[:n]
}

type config struct {
	mu      sync.Mutex
	t       *testing.T
	net     *labrpc.Network
	n       int
	servers []*KVServer
	names   [][]string // names[i][j]: end from server i to server j
	start   time.Time
	t0      time.Time
}

func makeConfig(t *testing.T, n int, unreliable bool) *config {
	cfg := &config{t: t, net: labrpc.MakeNetwork(), n: n, start: time.Now()}
	cfg.net.Reliable(!unreliable)
	cfg.servers = make([]*KVServer, n)
	cfg.names = make([][]string, n)
	for i := 0; i < n; i++ {
		cfg.startServer(i)
	}
	return cfg
}

func (cfg *config) startServer(i int) {
	cfg.names[i] = make([]string, cfg.n)
	ends := make([]*labrpc.ClientEnd, cfg.n)
	for j := 0; j < cfg.n; j++ {
		cfg.names[i][j] = randstring(20)
		ends[j] = cfg.net.MakeEnd(cfg.names[i][j])
		cfg.net.Connect(cfg.names[i][j], j)
		cfg.net.Enable(cfg.names[i][j], true)
	}
	kv := StartKVServer(ends, i)
	cfg.servers[i] = kv
	srv := labrpc.MakeServer()
	srv.AddService(labrpc.MakeService(kv))
	srv.AddService(labrpc.MakeService(kv.Replica()))
	cfg.net.AddServer(i, srv)
}

func (cfg *config) shutdownServer(i int) {
	cfg.net.DeleteServer(i)
	cfg.servers[i].Kill()
}

func (cfg *config) makeClient() *Clerk {
	ends := make([]*labrpc.ClientEnd, cfg.n)
	for j := 0; j < cfg.n; j++ {
		name := randstring(20)
		ends[j] = cfg.net.MakeEnd(name)
		cfg.net.Connect(name, j)
		cfg.net.Enable(name, true)
	}
	return MakeClerk(ends)
}

func (cfg *config) begin(desc string) {
	cfg.t0 = time.Now()
	cfg.t.Logf("Test: %s ...", desc)
}

func (cfg *config) end() {
	cfg.t.Logf("  ... Passed -- %4.1f s, %d RPCs", time.Since(cfg.t0).Seconds(), cfg.net.GetTotalCount())
}

func (cfg *config) checkTimeout() {
	if !cfg.t.Failed() && time.Since(cfg.start) > 120*time.Second {
		cfg.t.Fatal("test took longer than 120 seconds")
	}
}

func (cfg *config) cleanup() {
	for _, kv := range cfg.servers {
		if kv != nil {
			kv.Kill()
		}
	}
	cfg.net.Cleanup()
	cfg.checkTimeout()
}
