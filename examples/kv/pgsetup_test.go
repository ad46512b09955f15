package main

import (
	"context"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/stores/pgstore"
)

// TestPostgresServersStartingTogetherCreateTheTableOnce starts several
// servers' KVs at the same moment on a new database, as replicas started
// together by a script do: each must start ("kv server" processes
// started at once failed with `type "kv" already exists` when PostgreSQL's
// CREATE TABLE IF NOT EXISTS raced with itself).
func TestPostgresServersStartingTogetherCreateTheTableOnce(t *testing.T) {
	const servers = 4
	ctx := context.Background()
	for round := range 5 {
		url := pg.NewDatabase(t)
		stores := make([]*pgstore.Store, servers)
		for i := range stores {
			st, err := pgstore.Open(ctx, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			stores[i] = st
		}
		var (
			start = make(chan struct{})
			wg    sync.WaitGroup
			errs  = make([]error, servers)
		)
		for i, st := range stores {
			wg.Go(func() {
				<-start
				_, errs[i] = kvservice.NewPostgres(ctx, st)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, server %d: %v", round, i, err)
			}
		}
	}
}
