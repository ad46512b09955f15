package faultproxy_test

import (
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/semrpc/semrpc/tests/faultproxy"
)

// Example puts the proxy in front of an echo server, then makes it lose the
// server's replies.
func Example() {
	// An echo server on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	p, err := faultproxy.New(ln.Addr().String(), faultproxy.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	echo := func(c net.Conn, msg string) (string, error) {
		if _, err := io.WriteString(c, msg); err != nil {
			return "", err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return string(buf), err
	}

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	got, err := echo(c, "hello")
	fmt.Println("echo:", got, err)

	// From now on the server still gets every request, but no reply gets back.
	if err := p.SetDownstream(faultproxy.Faults{Drop: 1}); err != nil {
		panic(err)
	}
	_, err = echo(c, "again")
	fmt.Println("reply lost:", err != nil)

	st := p.Stats()
	fmt.Println("killed:", st.Killed, "bytes to server:", st.Upstream.Bytes, "bytes to client:", st.Downstream.Bytes)
	// Output:
	// echo: hello <nil>
	// reply lost: true
	// killed: 1 bytes to server: 10 bytes to client: 5
}
