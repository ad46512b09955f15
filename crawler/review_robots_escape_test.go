package crawler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
)

// TestReviewRobotsPercentEncodedPath pins a robots.txt bypass: robots rules
// were matched against the URL's path exactly as escaped, so a link to
// /%70rivate (the same resource as /private for any server, %70 being 'p')
// passed "Disallow: /private" and the page was fetched. RFC 9309 (2.2.2)
// compares paths with unreserved characters unescaped.
func TestReviewRobotsPercentEncodedPath(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	srv := startSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++ // net/http has unescaped it: /%70rivate arrives as /private
		mu.Unlock()
		switch r.URL.Path {
		case "/robots.txt":
			fmt.Fprint(w, "User-agent: *\nDisallow: /private\nDisallow: /%7Euser/\n")
		default:
			fmt.Fprint(w, `<a href="/%70rivate/secret">1</a><a href="/%70ublic">2</a><a href="/~user/x">3</a>`)
		}
	}))
	f := newPolite(t, fastRetries())
	links, err := f.Fetch(context.Background(), srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	// Normalize decodes %70 to 'p': the link comes back as /public.
	if want := []string{srv.URL + "/public"}; !slices.Equal(links, want) {
		t.Errorf("links = %q, want %q (escaped and unescaped forms of disallowed paths dropped)", links, want)
	}
	for _, u := range []string{"/%70rivate", "/%70rivate/secret", "/~user/x", "/%7euser/x", "/%7Euser/x"} {
		if _, err := f.Fetch(context.Background(), srv.URL+u); !errors.Is(err, ErrDisallowed) {
			t.Errorf("Fetch(%s): err = %v, want ErrDisallowed", u, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["/private"] != 0 || hits["/private/secret"] != 0 || hits["/~user/x"] != 0 {
		t.Errorf("disallowed pages requested: %v", hits)
	}
}
