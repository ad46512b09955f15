// Package testnet gives tests loopback addresses where nothing listens yet,
// for servers a test starts later, or stops and starts again on the same
// address.
//
// net.Listen on port 0 takes a port from the kernel's ephemeral range, and
// so does every other test that listens or dials at the same moment: an
// address found free that way and left unbound for a while (a server that
// is "not up yet", one being restarted) can be taken by another test's
// listener meanwhile, and a client then reaches the wrong server. FreeAddr
// takes ports below the ephemeral range, which the kernel never hands out
// on its own, each at most once per process.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports below this are left alone (well-known and registered services in
// common use).
const lowest = 10000

var ports struct {
	sync.Mutex
	next, end int // next to try, and the end of the range (exclusive); end 0 until first use
}

// FreeAddr returns a loopback address ("127.0.0.1:port") where nothing
// listened when it was called. It fails the test if it finds none.
func FreeAddr(t interface {
	Helper()
	Fatalf(format string, args ...any)
}) string {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.end == 0 {
		ports.end = ephemeralLow()
		if ports.end-lowest >= 1000 {
			// A random start: two test processes using this package at
			// once rarely try the same ports.
			ports.next = lowest + rand.IntN(ports.end-lowest)
		}
	}
	for ports.next >= lowest && ports.next < ports.end {
		p := ports.next
		ports.next++
		if ports.next == ports.end {
			ports.next = lowest - 1 // used up: fall back below
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	// No range below the ephemeral one (or it is used up): the kernel's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow returns the first port of the kernel's ephemeral range, or
// 0 if it is not known (then FreeAddr uses the kernel's ports).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}
