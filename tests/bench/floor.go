package bench

import (
	"io"
	"net"
	"os"
	"runtime"
	"testing"
)

// The floors: what the machine does without any RPC on top, so that the
// report shows how far each RPC stack is from it.

// pingPong times rounds of batch 64-byte messages written in one write and
// read back, over one loopback TCP connection to a goroutine echoing them;
// each op is one message.
func pingPong(b *testing.B, batch int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 64*batch)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				echoed <- nil // the client hung up
				return
			}
			if _, err := c.Write(buf); err != nil {
				echoed <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64*batch)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
	if err := <-echoed; err != nil {
		b.Fatal(err)
	}
}

// PingPong times a 64-byte round trip over loopback TCP, one goroutine
// writing and reading: the floor of a sequential call.
func PingPong(b *testing.B) { pingPong(b, 1) }

// BatchedPingPong is PingPong with 64 messages per write: the floor of 64
// callers whose requests and replies leave 64 to a write.
func BatchedPingPong(b *testing.B) { pingPong(b, 64) }

// ManyPingPong times 64-byte round trips over 64 loopback TCP connections
// at once, each with one goroutine writing and reading and one echoing:
// the floor of 64 clients with one caller each, which have one message per
// write in each direction and nothing to coalesce.
func ManyPingPong(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return // the client hung up
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((64 + procs - 1) / procs) // RunParallel multiplies by GOMAXPROCS
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for pb.Next() {
			if _, err := c.Write(buf); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Fsync times a 4 KiB write and fdatasync to a file in the temporary
// directory: the floor of a sequential exactly-once call, which commits
// before it answers.
func Fsync(b *testing.B) {
	f, err := os.CreateTemp("", "semrpc-fsync-*")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(page, int64(i%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
}
