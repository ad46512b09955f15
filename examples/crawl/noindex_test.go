package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// noIndexServer serves "/" linking to a page marked noindex by <meta
// name="robots">, one marked by X-Robots-Tag, and a plain one; each noindex
// page links to a page nothing else links to. robots.txt is a 404.
func noIndexServer(t *testing.T) *httptest.Server {
	t.Helper()
	pages := map[string]string{
		"/":            `<a href="/meta.html">m</a><a href="/header.html">h</a><a href="/plain.html">p</a>`,
		"/meta.html":   `<meta name="robots" content="noindex"><a href="/via-meta.html">v</a>`,
		"/header.html": `<a href="/via-header.html">v</a>`,
		"/plain.html":  `<a href="/">home</a>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok && !strings.HasPrefix(r.URL.Path, "/via-") {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == "/header.html" {
			w.Header().Set("X-Robots-Tag", "noindex")
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><body>%s</body></html>", body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The crawl summary counts noindex pages among the pages fetched, says how
// many there are in a line of its own, and -json lists them; the check
// still passes, whatever the mode.
func TestSummaryListsNoIndexPages(t *testing.T) {
	srv := noIndexServer(t)
	wantNoIndex := []string{srv.URL + "/header.html", srv.URL + "/meta.html"}
	for _, mode := range []string{"serial", "mutex", "channel", "distributed"} {
		t.Run(mode, func(t *testing.T) {
			s := runJSON(t, "-mode", mode, "-url", srv.URL+"/", "-workers", "3")
			if !s.CheckOK || s.Pages != 6 || s.Failed != 0 || !slices.Equal(s.NoIndex, wantNoIndex) {
				t.Errorf("summary: check %v (%s), %d pages, %d failed, noindex %v; want ok, 6, 0, %v",
					s.CheckOK, s.Check, s.Pages, s.Failed, s.NoIndex, wantNoIndex)
			}
			var out bytes.Buffer
			if err := run([]string{"-mode", mode, "-url", srv.URL + "/"}, &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "noindex            2 not indexed (noindex)\n") {
				t.Errorf("text summary has no noindex line:\n%s", out.String())
			}
		})
	}
}

// Without noindex pages the text summary has no noindex line, and -json an
// empty list.
func TestSummaryWithoutNoIndexPagesIsUnchanged(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>nothing</body></html>")
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	if err := run([]string{"-mode", "serial", "-url", srv.URL + "/", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"noindex": []`) {
		t.Errorf("-json does not list an empty noindex:\n%s", out.String())
	}
	out.Reset()
	if err := run([]string{"-mode", "serial", "-url", srv.URL + "/"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "noindex") {
		t.Errorf("text summary mentions noindex:\n%s", out.String())
	}
}

// A coordinator process's summary carries what its worker processes
// reported: the noindex pages, listed by -json and counted as fetched.
func TestCoordinatorSummaryListsNoIndexPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	srv := noIndexServer(t)
	addr := freeAddr(t)
	coord := startCrawl(t, "coordinator", "coordinator", "-listen", addr, "-url", srv.URL+"/", "-json", "-progress", "0")
	coord.waitLine(t, "listening", 30*time.Second)
	worker := startCrawl(t, "worker", "worker", "-coordinator", addr, "-workers", "2")
	if err := coord.wait(t, 60*time.Second); err != nil {
		t.Fatalf("coordinator: %v\n%s", err, coord.stdout.String())
	}
	if err := worker.wait(t, 60*time.Second); err != nil {
		t.Errorf("worker: %v", err)
	}
	var s clusterSummary
	if err := json.Unmarshal(coord.stdout.Bytes(), &s); err != nil {
		t.Fatalf("%v\n%s", err, coord.stdout.String())
	}
	want := []string{srv.URL + "/header.html", srv.URL + "/meta.html"}
	if !s.CheckOK || s.Pages != 6 || s.Failed != 0 || !slices.Equal(s.NoIndex, want) {
		t.Errorf("summary: check %v (%s), %d pages, %d failed, noindex %v; want ok, 6, 0, %v",
			s.CheckOK, s.Check, s.Pages, s.Failed, s.NoIndex, want)
	}
}
