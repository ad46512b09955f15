package crawler

import (
	"io"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestSiteDeterministic(t *testing.T) {
	a, b, c := NewSite(200, 5), NewSite(200, 5), NewSite(200, 6)
	if !slices.Equal(a.Reachable(), b.Reachable()) || !slices.Equal(a.Flaky(), b.Flaky()) {
		t.Error("same seed, different sites")
	}
	body := func(s *Site, path string) string {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "http://h"+path, nil))
		out, _ := io.ReadAll(rec.Body)
		return string(out)
	}
	for _, p := range []string{"/", "/d3/p3.html", "/d7/p117.html"} {
		if body(a, p) != body(b, p) {
			t.Errorf("same seed, different %s", p)
		}
	}
	if body(a, "/") == body(c, "/") && slices.Equal(a.Flaky(), c.Flaky()) {
		t.Error("different seeds, same site")
	}
	if len(a.Disallowed()) == 0 || len(a.Unlinked()) == 0 || len(a.Flaky()) == 0 {
		t.Errorf("site lacks traps: %d disallowed, %d unlinked, %d flaky",
			len(a.Disallowed()), len(a.Unlinked()), len(a.Flaky()))
	}
}

func TestRelativePath(t *testing.T) {
	tests := []struct{ dir, target, want string }{
		{"/", "/d1/p1.html", "d1/p1.html"},
		{"/d1/", "/d1/p2.html", "p2.html"},
		{"/d1/", "/d2/p3.html", "../d2/p3.html"},
		{"/d1/", "/", "../"},
		{"/", "/", "./"},
	}
	for _, tt := range tests {
		if got := relativePath(tt.dir, tt.target); got != tt.want {
			t.Errorf("relativePath(%q, %q) = %q, want %q", tt.dir, tt.target, got, tt.want)
		}
	}
}
