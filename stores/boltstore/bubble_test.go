package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
)

// A channel made in a testing/synctest bubble must not be used outside it
// (the runtime stops the program). A store made in a bubble (labtest runs
// lab tests that way) must therefore keep its recycled commit channels to
// itself: with a package-wide pool, a store outside the bubble took them
// and crashed the test binary with "send on synctest channel from outside
// bubble".
func TestStoreMadeInABubbleKeepsItsChannelsThere(t *testing.T) {
	dir := t.TempDir()
	noop := func(ctx context.Context) (any, error) { return nil, nil }
	for i := range 20 {
		synctest.Test(t, func(t *testing.T) {
			s, err := Open(filepath.Join(dir, fmt.Sprintf("in%d.db", i)), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for range 5 {
				if _, err := s.Transact(context.Background(), noop); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	s, err := Open(filepath.Join(dir, "out.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 100 {
		if _, err := s.Transact(context.Background(), noop); err != nil {
			t.Fatal(err)
		}
	}
}
