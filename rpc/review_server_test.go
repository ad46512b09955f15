package rpc

import (
	"context"
	"encoding/gob"
	"net"
	"reflect"
	"testing"
	"time"
)

var reflectZero = reflect.Value{}

// Regression: the in-flight counter that Shutdown waits on covered only
// execute(), not the write of the reply, so Shutdown could see no call
// running and close the connection while a call that had completed was
// still writing its reply: the reply was lost and the caller was told the
// call may have executed, although Shutdown promises to let running calls
// finish.
func TestReviewShutdownKeepsRepliesOfFinishedCalls(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	cli, srv := net.Pipe() // a write blocks until the peer reads it
	defer cli.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.ServeConn(srv)
	}()

	enc := gob.NewEncoder(cli)
	if err := enc.Encode(&wireRequest{ServiceMethod: "Arith.Slow", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(Args{7, 0}); err != nil {
		t.Fatal(err)
	}
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	for !s.shutting.Load() {
		time.Sleep(time.Millisecond)
	}
	close(a.block) // Slow returns; its reply waits for us to read it

	// Give a buggy Shutdown time to close the connection under the reply.
	var shutErr error
	shutReturned := false
	select {
	case shutErr = <-shut:
		shutReturned = true
	case <-time.After(500 * time.Millisecond):
	}

	dec := gob.NewDecoder(cli)
	var resp wireResponse
	var got int
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("reply of a call that completed during Shutdown was lost: %v", err)
	}
	if resp.Seq == goAwaySeq { // the shutdown notice; a stock client skips it too
		if err := dec.Decode(&emptyBody{}); err != nil {
			t.Fatal(err)
		}
		resp = wireResponse{} // gob leaves fields the message does not carry
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("reply of a call that completed during Shutdown was lost: %v", err)
		}
	}
	if err := dec.Decode(&got); err != nil || resp.Seq != 1 || resp.Error != "" || got != 7 {
		t.Fatalf("reply = %+v %d, %v; want seq 1, 7", resp, got, err)
	}
	if !shutReturned {
		shutErr = <-shut
	}
	if shutErr != nil {
		t.Errorf("Shutdown: %v", shutErr)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after Shutdown")
	}
}

// Regression: Close promised that no goroutine of the server outlives it,
// but it waited only for connections accepted by Serve: workers of
// connections given to ServeConn kept running methods after Close returned.
// (The same change registers Serve's connections with the WaitGroup under
// the lock that Close takes, instead of after it.)
func TestReviewCloseWaitsForServeConnCalls(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	cli, srv := net.Pipe()
	defer cli.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.ServeConn(srv)
	}()
	enc := gob.NewEncoder(cli)
	if err := enc.Encode(&wireRequest{ServiceMethod: "Arith.Slow", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(Args{7, 0}); err != nil {
		t.Fatal(err)
	}
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Error("Close returned while a method of a ServeConn connection was still running")
	case <-time.After(200 * time.Millisecond):
	}
	close(a.block)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the method returned")
	}
	<-served
}
