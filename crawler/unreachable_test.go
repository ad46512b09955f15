package crawler

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// TestUnreachableHostIsReportedAsUnreachable fetches from a port nothing
// listens on: the error says the host is unreachable, not that robots.txt
// forbade the page, and it is still transient (the next fetch tries again).
func TestUnreachableHostIsReportedAsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused

	cfg := fastRetries()
	cfg.MaxRetries = 1
	p := newPolite(t, cfg)
	_, err = p.Fetch(context.Background(), "http://"+addr+"/page")
	if err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "host unreachable") || strings.Contains(msg, "disallowed by robots.txt") {
		t.Errorf("error %q: want it to say host unreachable, and not blame robots.txt", msg)
	}
	if !errors.Is(err, ErrHostUnreachable) || !errors.Is(err, ErrRobotsUnavailable) || !errors.Is(err, ErrDisallowed) {
		t.Errorf("error %q: want ErrHostUnreachable, ErrRobotsUnavailable and ErrDisallowed", msg)
	}
}
