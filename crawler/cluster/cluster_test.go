package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/rpc"
)

// TestRunCoordinatorInterruptedSaysTheCrawlIsLost: ctx ending before the
// crawl is over stops the coordinator with ErrInterrupted; in memory, the
// error says the crawl is lost.
func TestRunCoordinatorInterruptedSaysTheCrawlIsLost(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := RunCoordinator(ctx, CoordinatorConfig{
		Listen:  "127.0.0.1:0",
		Crawl:   crawler.CoordinatorConfig{StartURL: "http://example.invalid/"},
		Started: func(Started) { cancel() },
	})
	if !errors.Is(err, ErrInterrupted) || rep != nil {
		t.Fatalf("RunCoordinator = %v, %v; want ErrInterrupted and no report", rep, err)
	}
	if want := "lost"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say the crawl is %s", err, want)
	}
}

// TestRunCoordinatorRefusesBadConfig: no start URL, and a port already
// taken, are errors, not panics or hangs.
func TestRunCoordinatorRefusesBadConfig(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		cfg  CoordinatorConfig
	}{
		{"no start URL", CoordinatorConfig{Listen: "127.0.0.1:0"}},
		{"port taken", CoordinatorConfig{Listen: taken.Addr().String(), Crawl: crawler.CoordinatorConfig{StartURL: "http://a.test/"}}},
		{"negative progress", CoordinatorConfig{Listen: "127.0.0.1:0", ProgressInterval: -time.Second,
			Crawl: crawler.CoordinatorConfig{StartURL: "http://a.test/"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rep, err := RunCoordinator(context.Background(), tt.cfg); err == nil {
				t.Errorf("no error; report %+v", rep)
			}
		})
	}
}

// TestRunWorkersGivesItsLeasesBackWhenInterrupted: a worker process
// interrupted mid-fetch releases its lease by the typed Release call, so
// the next worker gets the URL although its lease had an hour to run.
func TestRunWorkersGivesItsLeasesBackWhenInterrupted(t *testing.T) {
	fetching := make(chan struct{}, 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
			return
		}
		select {
		case fetching <- struct{}{}:
		default:
		}
		<-r.Context().Done() // never answers: the worker is interrupted first
	}))
	defer site.Close()
	coord, err := crawler.NewCoordinator(crawler.CoordinatorConfig{StartURL: site.URL + "/", LeaseTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	core := rpc.NewServer()
	if err := core.Register(coord); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		core.Serve(l)
	}()
	defer func() {
		core.Close()
		<-served
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		rep *WorkersReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := RunWorkers(ctx, WorkersConfig{Coordinator: l.Addr().String(), Fetchers: 2, Label: "w"})
		done <- result{rep, err}
	}()
	select {
	case <-fetching:
	case r := <-done:
		t.Fatalf("RunWorkers returned before fetching: %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: the worker never fetched the start URL")
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: RunWorkers did not return after its context ended")
	}
	if !errors.Is(r.err, ErrInterrupted) || r.rep == nil || r.rep.Released != 1 {
		t.Fatalf("RunWorkers = %+v, %v; want ErrInterrupted with 1 lease given back", r.rep, r.err)
	}
	var lr crawler.LeaseReply
	if err := coord.Lease(crawler.LeaseArgs{Worker: "next"}, &lr); err != nil || lr.Task.URL != site.URL+"/" {
		t.Errorf("next worker's lease: %+v, %v; want the start URL at once", lr.Task, err)
	}
	if procs, fetchers := coord.Processes(); procs != 1 || fetchers != 2 {
		t.Errorf("coordinator counts %d processes, %d fetchers; want 1 and 2", procs, fetchers)
	}
}
