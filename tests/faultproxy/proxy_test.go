package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSeed seeds the payloads; failures print it.
const testSeed = 20240611

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestPassThrough(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"one byte", 1},
		{"small message", 1000},
		{"one MiB", 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, true)
			p := startProxy(t, srv.Addr(), Config{})
			c := dial(t, p.Addr())
			want := payload(testSeed, tt.size)

			// Write concurrently: a large echo would fill both directions'
			// buffers otherwise.
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(want)
				if err == nil {
					err = c.CloseWrite()
				}
				werr <- err
			}()
			got, err := readUntilError(t, c)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read after half-close: %v, want io.EOF", err)
			}
			if err := <-werr; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("echo differs (seed %d): got %d bytes, want %d", testSeed, len(got), len(want))
			}
			if n := srv.nextFinished(t); n != int64(tt.size) {
				t.Errorf("server received %d bytes, want %d", n, tt.size)
			}
			testwait.For(t, "connection to close", func() bool { return p.Stats().Active == 0 })
			st := p.Stats()
			if st.Accepted != 1 || st.Killed != 0 || st.Refused != 0 || st.DialFailed != 0 {
				t.Errorf("stats = %+v, want 1 accepted and nothing else", st)
			}
			for dir, ds := range map[string]DirectionStats{"upstream": st.Upstream, "downstream": st.Downstream} {
				if ds.Bytes != int64(tt.size) || ds.Chunks < 1 || ds.Chunks > int64(tt.size) || ds.Delayed != 0 || ds.BlackholedBytes != 0 {
					t.Errorf("%s stats = %+v, want %d bytes in 1..%[2]d chunks", dir, ds, tt.size)
				}
			}
		})
	}
}

func TestDrop(t *testing.T) {
	tests := []struct {
		name       string
		upstream   bool
		reset      bool
		serverSees int64
	}{
		{"upstream FIN: request never reaches the server", true, false, 0},
		{"upstream RST", true, true, 0},
		{"downstream FIN: server executed, reply lost", false, false, 4},
		{"downstream RST", false, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, true)
			f := Faults{Drop: 1}
			if tt.reset {
				f.Reset = 1
			}
			cfg := Config{}
			if tt.upstream {
				cfg.Upstream = f
			} else {
				cfg.Downstream = f
			}
			p := startProxy(t, srv.Addr(), cfg)
			c := dial(t, p.Addr())
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got, err := readUntilError(t, c)
			if len(got) != 0 {
				t.Errorf("client read %q, want nothing", got)
			}
			if tt.reset && !isReset(err) {
				t.Errorf("client read error = %v, want ECONNRESET", err)
			}
			if !tt.reset && !errors.Is(err, io.EOF) {
				t.Errorf("client read error = %v, want io.EOF", err)
			}
			if n := srv.nextFinished(t); n != tt.serverSees {
				t.Errorf("server received %d bytes, want %d", n, tt.serverSees)
			}
			st := p.Stats()
			wantResets := int64(0)
			if tt.reset {
				wantResets = 1
			}
			if st.Killed != 1 || st.Resets != wantResets {
				t.Errorf("Killed, Resets = %d, %d; want 1, %d", st.Killed, st.Resets, wantResets)
			}
			if st.Upstream.Bytes != tt.serverSees || st.Downstream.Bytes != 0 {
				t.Errorf("forwarded %d up, %d down; want %d, 0", st.Upstream.Bytes, st.Downstream.Bytes, tt.serverSees)
			}
		})
	}
}

func TestDropAfterBytes(t *testing.T) {
	t.Run("upstream: server gets exactly N bytes", func(t *testing.T) {
		srv := startServer(t, false)
		p := startProxy(t, srv.Addr(), Config{Upstream: Faults{DropAfterBytes: 10}})
		c := dial(t, p.Addr())
		if _, err := c.Write(payload(testSeed, 25)); err != nil {
			t.Fatal(err)
		}
		if _, err := readUntilError(t, c); err == nil {
			t.Fatal("client connection survived")
		}
		if n := srv.nextFinished(t); n != 10 {
			t.Errorf("server received %d bytes, want 10", n)
		}
		if st := p.Stats(); st.Killed != 1 || st.Upstream.Bytes != 10 {
			t.Errorf("stats = %+v, want 1 kill after 10 bytes", st)
		}
	})
	t.Run("downstream: counted across chunks", func(t *testing.T) {
		srv := startServer(t, true)
		p := startProxy(t, srv.Addr(), Config{Downstream: Faults{DropAfterBytes: 30}})
		c := dial(t, p.Addr())
		first, second := payload(testSeed, 25), payload(testSeed+1, 25)
		if got, err := roundTrip(c, first); err != nil || !bytes.Equal(got, first) {
			t.Fatalf("first echo = %x, %v; want %x (seed %d)", got, err, first, testSeed)
		}
		if _, err := c.Write(second); err != nil {
			t.Fatal(err)
		}
		got, err := readUntilError(t, c)
		if !errors.Is(err, io.EOF) {
			t.Errorf("read error = %v, want io.EOF", err)
		}
		if !bytes.Equal(got, second[:5]) {
			t.Errorf("second echo = %x, want its first 5 bytes %x (seed %d)", got, second[:5], testSeed)
		}
		if n := srv.nextFinished(t); n != 50 {
			t.Errorf("server received %d bytes, want 50", n)
		}
	})
}

func TestDelay(t *testing.T) {
	tests := []struct {
		name     string
		upstream bool
		faults   Faults
	}{
		{"upstream delay", true, Faults{Delay: 300 * time.Millisecond}},
		{"downstream delay", false, Faults{Delay: 300 * time.Millisecond}},
		{"delay and jitter", true, Faults{Delay: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, true)
			cfg := Config{Seed: testSeed}
			if tt.upstream {
				cfg.Upstream = tt.faults
			} else {
				cfg.Downstream = tt.faults
			}
			p := startProxy(t, srv.Addr(), cfg)
			c := dial(t, p.Addr())
			start := time.Now()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			expectNothingFor(t, c, 100*time.Millisecond)
			if tt.upstream && srv.received.Load() != 0 {
				t.Error("server got the delayed request early")
			}
			got := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
				t.Fatalf("echo = %q, %v; want ping", got, err)
			}
			if elapsed := time.Since(start); elapsed < tt.faults.Delay {
				t.Errorf("echo took %v, less than the delay %v", elapsed, tt.faults.Delay)
			}
			st := p.Stats()
			ds, other := st.Downstream, st.Upstream
			if tt.upstream {
				ds, other = other, ds
			}
			if ds.Delayed != 1 || other.Delayed != 0 {
				t.Errorf("Delayed = %d in the faulty direction, %d in the other; want 1, 0", ds.Delayed, other.Delayed)
			}
		})
	}
}

func TestBlackhole(t *testing.T) {
	for _, upstream := range []bool{true, false} {
		name := map[bool]string{true: "upstream", false: "downstream"}[upstream]
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, true)
			p := startProxy(t, srv.Addr(), Config{})
			set, dirStats := p.SetDownstream, func(s Stats) DirectionStats { return s.Downstream }
			if upstream {
				set, dirStats = p.SetUpstream, func(s Stats) DirectionStats { return s.Upstream }
			}
			if err := set(Faults{Blackhole: true}); err != nil {
				t.Fatal(err)
			}
			c := dial(t, p.Addr())
			if _, err := c.Write([]byte("lost")); err != nil {
				t.Fatal(err)
			}
			testwait.For(t, "bytes to be blackholed", func() bool { return dirStats(p.Stats()).BlackholedBytes == 4 })
			expectNothingFor(t, c, 200*time.Millisecond)
			wantServer := int64(4)
			if upstream {
				wantServer = 0
			}
			if n := srv.received.Load(); n != wantServer {
				t.Errorf("server received %d bytes, want %d", n, wantServer)
			}

			// Turning it off forwards new data; what was swallowed stays lost.
			if err := set(Faults{}); err != nil {
				t.Fatal(err)
			}
			if got, err := roundTrip(c, []byte("back")); err != nil || string(got) != "back" {
				t.Fatalf("after heal echo = %q, %v; want back", got, err)
			}
			if st := p.Stats(); st.Killed != 0 || dirStats(st).BlackholedBytes != 4 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestBandwidth(t *testing.T) {
	for _, upstream := range []bool{true, false} {
		name := map[bool]string{true: "upstream", false: "downstream"}[upstream]
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, true)
			f := Faults{Bandwidth: 1000}
			cfg := Config{}
			if upstream {
				cfg.Upstream = f
			} else {
				cfg.Downstream = f
			}
			p := startProxy(t, srv.Addr(), cfg)
			c := dial(t, p.Addr())
			want := payload(testSeed, 1000)
			start := time.Now()
			got, err := roundTrip(c, want)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("echo: %v, equal %v (seed %d)", err, bytes.Equal(got, want), testSeed)
			}
			// 1000 bytes at 1000 B/s, sent in slices of 100, cannot all be
			// through before 900 ms; ask for much less than that.
			if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
				t.Errorf("1000 bytes at 1000 B/s arrived after %v", elapsed)
			}
		})
	}
}

func TestChangeFaultsWhileRunning(t *testing.T) {
	srv := startServer(t, true)
	p := startProxy(t, srv.Addr(), Config{})
	c1 := dial(t, p.Addr())
	if _, err := roundTrip(c1, []byte("one")); err != nil {
		t.Fatal(err)
	}

	if err := p.SetDropNew(1); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, p.Addr())
	if st := p.Stats(); st.Refused != 1 || st.Accepted != 2 {
		t.Errorf("Refused, Accepted = %d, %d; want 1, 2", st.Refused, st.Accepted)
	}
	if _, err := roundTrip(c1, []byte("two")); err != nil {
		t.Fatalf("established connection hurt by DropNew: %v", err)
	}

	p.Heal()
	if p.DropNew() != 0 || p.Upstream() != (Faults{}) || p.Downstream() != (Faults{}) {
		t.Fatal("Heal left faults on")
	}
	c3 := dial(t, p.Addr())
	if _, err := roundTrip(c3, []byte("three")); err != nil {
		t.Fatalf("after Heal: %v", err)
	}

	if err := p.SetDownstream(Faults{Drop: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c1, []byte("four")); err == nil {
		t.Fatal("reply came through a downstream Drop of 1")
	}
	if st := p.Stats(); st.Killed != 1 {
		t.Errorf("Killed = %d, want 1", st.Killed)
	}
}

// TestConcurrentFaultChanges streams data while another goroutine keeps
// changing the faults; the stream must arrive intact (and -race must stay
// quiet).
func TestConcurrentFaultChanges(t *testing.T) {
	srv := startServer(t, true)
	p := startProxy(t, srv.Addr(), Config{Seed: testSeed})
	c := dial(t, p.Addr())
	want := payload(testSeed, 256<<10)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		settings := []Faults{
			{Delay: time.Millisecond, Jitter: time.Millisecond},
			{Bandwidth: 4 << 20},
			{},
			{Jitter: 2 * time.Millisecond, Bandwidth: 8 << 20},
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			f := settings[i%len(settings)]
			if err := p.SetUpstream(f); err != nil {
				t.Error(err)
			}
			if err := p.SetDownstream(settings[(i+1)%len(settings)]); err != nil {
				t.Error(err)
			}
			_ = p.Stats()
		}
	}()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadFull(c, got)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stream corrupted (seed %d)", testSeed)
	}
}

// killPoints runs conns connections one after another through a proxy with
// the given seed and faults, sends up to msgs 8-byte messages on each, one
// round trip at a time so that each is one chunk, and returns for each
// connection the message at which it died (msgs if it survived).
func killPoints(t *testing.T, seed int64, up, down Faults, conns, msgs int) []int {
	t.Helper()
	srv := startServer(t, true)
	p, err := New(srv.Addr(), Config{Seed: seed, Upstream: up, Downstream: down})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	points := make([]int, conns)
	for i := range points {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for ; k < msgs; k++ {
			if _, err := roundTrip(c, []byte("message!")); err != nil {
				if isTimeout(err) {
					t.Fatalf("seed %d: connection %d message %d: %v", seed, i, k, err)
				}
				break
			}
		}
		points[i] = k
		c.Close()
	}
	if st := p.Stats(); st.Accepted != int64(conns) {
		t.Fatalf("Accepted = %d, want %d", st.Accepted, conns)
	}
	return points
}

func TestSeedDeterminism(t *testing.T) {
	const seed, otherSeed, conns, msgs = 7, 8, 12, 8
	up, down := Faults{Drop: 0.15}, Faults{Drop: 0.1}
	a := killPoints(t, seed, up, down, conns, msgs)
	// Delay and Jitter draw from the same stream; they must not shift the
	// drop decisions.
	upJ, downJ := up, down
	upJ.Jitter, downJ.Jitter = time.Millisecond, time.Millisecond
	b := killPoints(t, seed, upJ, downJ, conns, msgs)
	c := killPoints(t, otherSeed, up, down, conns, msgs)
	t.Logf("seed %d: %v; with jitter: %v; seed %d: %v", seed, a, b, otherSeed, c)
	if !slices.Equal(a, b) {
		t.Errorf("seed %d gave different kill points: %v then %v", seed, a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds %d and %d gave the same kill points %v", seed, otherSeed, a)
	}
	survived, killed := 0, 0
	for _, k := range a {
		if k == msgs {
			survived++
		} else {
			killed++
		}
	}
	if survived == 0 || killed == 0 {
		t.Errorf("seed %d: %d survived, %d killed; the test needs both", seed, survived, killed)
	}
}

func TestKillAll(t *testing.T) {
	srv := startServer(t, true)
	p := startProxy(t, srv.Addr(), Config{})
	c1, c2 := dial(t, p.Addr()), dial(t, p.Addr())
	for _, c := range []net.Conn{c1, c2} {
		if _, err := roundTrip(c, []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	p.KillAll()
	for i, c := range []net.Conn{c1, c2} {
		if got, err := readUntilError(t, c); len(got) != 0 || err == nil {
			t.Errorf("connection %d after KillAll read %q, %v", i, got, err)
		}
	}
	testwait.For(t, "no active connections", func() bool { return p.Stats().Active == 0 })
	c3 := dial(t, p.Addr())
	if _, err := roundTrip(c3, []byte("again")); err != nil {
		t.Fatalf("new connection after KillAll: %v", err)
	}
	if st := p.Stats(); st.Killed != 0 || st.Accepted != 3 {
		t.Errorf("Killed, Accepted = %d, %d; want 0, 3", st.Killed, st.Accepted)
	}
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	p := startProxy(t, deadAddr, Config{})
	expectRefused(t, p.Addr())
	testwait.For(t, "DialFailed", func() bool { return p.Stats().DialFailed == 1 })
}

// TestCloseStopsEverything closes a proxy with a connection in every kind of
// wait: idle, data held by a long delay, a blackhole, a slow bandwidth limit.
// Close must return promptly and leave no goroutine behind.
func TestCloseStopsEverything(t *testing.T) {
	srv := startServer(t, true)
	p, err := New(srv.Addr(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	idle := dial(t, p.Addr())

	mustSet := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustSet(p.SetUpstream(Faults{Delay: time.Hour}))
	delayed := dial(t, p.Addr())
	delayed.Write([]byte("later"))
	testwait.For(t, "the delayed chunk", func() bool { return p.Stats().Upstream.Delayed == 1 })

	mustSet(p.SetUpstream(Faults{Blackhole: true}))
	blackholed := dial(t, p.Addr())
	blackholed.Write([]byte("gone"))
	testwait.For(t, "the blackholed chunk", func() bool { return p.Stats().Upstream.BlackholedBytes == 4 })

	mustSet(p.SetUpstream(Faults{}))
	mustSet(p.SetDownstream(Faults{Bandwidth: 1}))
	slow := dial(t, p.Addr())
	slow.Write(make([]byte, 100))
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow.Read(make([]byte, 1)); err != nil {
		t.Fatalf("slow connection: %v", err)
	}

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: Close did not return")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "delayed": delayed, "blackholed": blackholed, "slow": slow} {
		if got, err := readUntilError(t, c); err == nil || (name != "slow" && len(got) != 0) {
			t.Errorf("%s connection after Close read %q, %v", name, got, err)
		}
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("proxy still accepts after Close")
	}
	srv.Close()
	goleak.VerifyNone(t)
}

func TestInvalidSettings(t *testing.T) {
	srv := startServer(t, true)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"drop above one", Config{Upstream: Faults{Drop: 1.5}}},
		{"negative reset", Config{Downstream: Faults{Reset: -0.1}}},
		{"NaN drop", Config{Upstream: Faults{Drop: nan()}}},
		{"negative delay", Config{Upstream: Faults{Delay: -time.Second}}},
		{"negative jitter", Config{Downstream: Faults{Jitter: -1}}},
		{"negative bandwidth", Config{Downstream: Faults{Bandwidth: -1}}},
		{"negative DropAfterBytes", Config{Upstream: Faults{DropAfterBytes: -1}}},
		{"DropNew above one", Config{DropNew: 2}},
		{"negative dial timeout", Config{DialTimeout: -1}},
		{"negative chunk size", Config{ChunkSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(srv.Addr(), tt.cfg)
			if !errors.Is(err, ErrInvalid) {
				if p != nil {
					p.Close()
				}
				t.Fatalf("New = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := New("", Config{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with empty target = %v, want ErrInvalid", err)
	}

	good := Faults{Delay: time.Millisecond}
	p := startProxy(t, srv.Addr(), Config{Upstream: good, Downstream: good})
	if err := p.SetUpstream(Faults{Drop: 2}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetUpstream = %v, want ErrInvalid", err)
	}
	if err := p.SetDownstream(Faults{Bandwidth: -5}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetDownstream = %v, want ErrInvalid", err)
	}
	if err := p.SetDropNew(-1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetDropNew = %v, want ErrInvalid", err)
	}
	if p.Upstream() != good || p.Downstream() != good || p.DropNew() != 0 {
		t.Error("a rejected setting was applied")
	}
}

func nan() float64 { z := 0.0; return z / z }
