package testnet

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeAddrIsFreeOnceAndBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := make(map[string]bool)
	for range 50 {
		addr := FreeAddr(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := strconv.Atoi(port); low-lowest >= 1000 && (p < lowest || p >= low) {
			t.Errorf("port %d, want one in [%d, %d), below the ephemeral range", p, lowest, low)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		l.Close()
	}
}
