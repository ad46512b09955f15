package crawler

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"http://example.com", "http://example.com/"},
		{"HTTP://Example.COM/A/b", "http://example.com/A/b"},
		{"https://example.com:443/x", "https://example.com/x"},
		{"http://example.com:80/x", "http://example.com/x"},
		{"http://example.com:443/x", "http://example.com:443/x"},
		{"https://example.com:80/x", "https://example.com:80/x"},
		{"http://example.com:8080", "http://example.com:8080/"},
		{"http://example.com:/x", "http://example.com/x"},
		{"http://example.com/a/./b/../c", "http://example.com/a/c"},
		{"http://example.com/a/b/..", "http://example.com/a/"},
		{"http://example.com/a/b/.", "http://example.com/a/b/"},
		{"http://example.com/../../x", "http://example.com/x"},
		{"http://example.com/a//b", "http://example.com/a//b"},
		{"http://example.com/x#frag", "http://example.com/x"},
		{"http://example.com/x?b=2&a=1#f", "http://example.com/x?b=2&a=1"},
		{"http://example.com/x?", "http://example.com/x?"},
		{"http://example.com/a%2Fb/%7e", "http://example.com/a%2Fb/~"},
		{"http://example.com/%7Euser/%41%62c%2d%2E%5F%30", "http://example.com/~user/Abc-._0"},
		{"http://example.com/a%2fb%3a%c3%a9", "http://example.com/a%2Fb%3A%C3%A9"},
		{"http://example.com/%2E%2E/x/%2e/y", "http://example.com/x/y"},
		{"http://example.com/x?q=%7e%2f%zz%", "http://example.com/x?q=~%2F%zz%"},
		{"http://example.com/caf%C3%A9", "http://example.com/caf%C3%A9"},
		{"http://example.com/café", "http://example.com/caf%C3%A9"},
		{"http://bücher.example/", "http://xn--bcher-kva.example/"},
		{"http://BÜCHER.example:8080/x", "http://xn--bcher-kva.example:8080/x"},
		{"http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/"},
		{"http://%E6%97%A5%E6%9C%AC.jp/", "http://xn--wgv71a.jp/"},
		{"http://ｅｘａｍｐｌｅ.com/", "http://example.com/"},
		{"http://user:secret@example.com:8080/", "http://example.com:8080/"},
		{"http://example.com/a b", "http://example.com/a%20b"},
		{"  http://example.com/trim  ", "http://example.com/trim"},
		{"http://[::1]:80/", "http://[::1]/"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"http://user@example.com/", "http://example.com/"},
		// One spelling per port and per IPv6 address, so that a URL and
		// its host's politeness state are not split by spellings.
		{"http://example.com:0080/x", "http://example.com/x"},
		{"http://example.com:08080/x", "http://example.com:8080/x"},
		{"https://example.com:00443/", "https://example.com/"},
		{"http://[0:0:0:0:0:0:0:1]:80/", "http://[::1]/"},
		{"http://[::0001]:08080/", "http://[::1]:8080/"},
		{"http://[2001:DB8::A]/", "http://[2001:db8::a]/"},
		{"http://[::ffff:127.0.0.1]/", "http://[::ffff:127.0.0.1]/"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		if again, err := Normalize(got); err != nil || again != got {
			t.Errorf("Normalize(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, in := range []string{
		"", "/relative/path", "relative", "mailto:a@example.com", "javascript:alert(1)",
		"ftp://example.com/", "http:opaque", "http:///nohost", "http://exa mple.com/",
		"http://example.com:port/", "data:text/html,hi", "://x",
		"http://::", "http://[::1/", "http://[zz]/", "http://a]b/",
		"http://a\u200db.example/", "http://\u05d0a.example/", "http://%FF.example/",
		"http://example.com:65536/", "http://example.com:99999999999999999999/", "http://[1.2.3.4]/",
	} {
		if got, err := Normalize(in); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", in, got)
		} else if !errors.Is(err, ErrUnsupportedURL) {
			t.Errorf("Normalize(%q) error %v does not wrap ErrUnsupportedURL", in, err)
		}
	}
}

func TestExtractLinks(t *testing.T) {
	base, _ := url.Parse("http://example.com/dir/page.html")
	tests := []struct {
		name string
		html string
		want []string
	}{
		{"absolute and relative",
			`<a href="http://other.org/x">1</a><a href="sib.html">2</a><a href="/root">3</a>`,
			[]string{"http://other.org/x", "http://example.com/dir/sib.html", "http://example.com/root"}},
		{"dot segments and fragments",
			`<a href="../up.html#x">1</a><a href="./here.html">2</a><a href="#top">3</a>`,
			[]string{"http://example.com/up.html", "http://example.com/dir/here.html", "http://example.com/dir/page.html"}},
		{"non-http schemes dropped",
			`<a href="mailto:a@b.c">m</a><a href="javascript:void(0)">j</a><a href="ftp://x/">f</a><a href="https://ok.org">ok</a>`,
			[]string{"https://ok.org/"}},
		{"duplicates dropped, order kept",
			`<a href="/b">b</a><a href="/a">a</a><a href="/b#frag">b again</a><a href="HTTP://EXAMPLE.COM:80/a">a again</a>`,
			[]string{"http://example.com/b", "http://example.com/a"}},
		{"base href applies to every link, even earlier ones",
			`<a href="early">e</a><head><base href="/other/"></head><a href="late">l</a><base href="/ignored/">`,
			[]string{"http://example.com/other/early", "http://example.com/other/late"}},
		{"absolute base",
			`<base href="https://cdn.example.net/x/"><a href="y">y</a>`,
			[]string{"https://cdn.example.net/x/y"}},
		{"only <a href>",
			`<link href="/css"><img src="/img"><area href="/area"><a name="n">no href</a><a HREF=" /spaced ">s</a>`,
			[]string{"http://example.com/spaced"}},
		{"self-closing and unquoted",
			`<a href=/u1 /><A Href=/u2>x</A>`,
			[]string{"http://example.com/u1", "http://example.com/u2"}},
		{"links in script and comments ignored",
			`<script>var s = '<a href="/script">';</script><!-- <a href="/comment"> --><a href="/real">r</a>`,
			[]string{"http://example.com/real"}},
		{"malformed html", `<a href="/ok"><a href=<<<>>><div <a href="/x`,
			[]string{"http://example.com/ok", "http://example.com/dir/%3C%3C%3C"}},
		{"bad URL skipped", `<a href="http://[::1">bad</a><a href="/good">g</a>`, []string{"http://example.com/good"}},
		{"empty", ``, []string{}},
		{"rel nofollow dropped",
			`<a rel="nofollow" href="/n">n</a><a rel=" external  NoFollow " href="/m">m</a><a rel="noopener" href="/k">k</a>`,
			[]string{"http://example.com/k"}},
		{"a link also reached without nofollow is kept",
			`<a rel="nofollow" href="/k">n</a><a href="/k">k</a>`,
			[]string{"http://example.com/k"}},
		{"meta robots nofollow drops every link",
			`<head><meta name="robots" content="noindex,nofollow"></head><a href="/a">a</a>`,
			[]string{}},
		{"meta robots none drops every link", `<a href="/a">a</a><meta name="Robots" content=" NONE ">`, []string{}},
		{"meta robots noindex keeps links", `<meta name="robots" content="noindex"><a href="/a">a</a>`,
			[]string{"http://example.com/a"}},
		{"meta for another agent ignored", `<meta name="otherbot" content="nofollow"><a href="/a">a</a>`,
			[]string{"http://example.com/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExtractLinks(base, strings.NewReader(tt.html))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestExtractLinksNilBase(t *testing.T) {
	got, err := ExtractLinks(nil, strings.NewReader(`<a href="/rel">r</a><a href="http://abs.org/a">a</a>`))
	if err != nil || !slices.Equal(got, []string{"http://abs.org/a"}) {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestExtractLinksReadError(t *testing.T) {
	r := iotest.TimeoutReader(strings.NewReader(`<a href="/first">1</a>` + strings.Repeat(" ", 5000) + `<a href="/second">`))
	got, err := ExtractLinks(nil, r)
	if err == nil || !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("err = %v, want the reader's error", err)
	}
	_ = got // links before the error may or may not have been tokenized yet
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"http://example.com", "HTTPS://A.B:443/./x/../y?q#f", "http://[::1]:80/a/..",
		"http://x/%2e%2e/", "http://x/a b/../c", "http://u:p@h:8080/", "http://h/..%2f",
		"http://bücher.example/%7e?%7e%2f", "http://xn--bcher-kva.example/", "http://%E6%97%A5.jp/%zz",
		"http://[0:0::1]:0080/", "http://h:065535/", "http://[::ffff:1.2.3.4]:08080/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Normalize(in)
		if err != nil {
			return
		}
		again, err := Normalize(out)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which does not normalize: %v", in, out, err)
		}
		if again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		u, err := url.Parse(out)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			t.Fatalf("Normalize(%q) = %q: not an absolute http(s) URL without fragment", in, out)
		}
	})
}

func FuzzExtractLinks(f *testing.F) {
	f.Add(`<a href="/a">a</a><base href="../b/"><a href="c#d">`)
	f.Add(`<a href="HTTP://X.Y:80/./p">`)
	f.Add(`<meta name=robots content="nofollow"><a rel=nofollow href=/x><a href=/y>`)
	f.Fuzz(func(t *testing.T, doc string) {
		base, _ := url.Parse("http://example.com/dir/page")
		links, err := ExtractLinks(base, strings.NewReader(doc))
		if err != nil {
			t.Fatal(err) // a strings.Reader never fails
		}
		for _, l := range links {
			if n, err := Normalize(l); err != nil || n != l {
				t.Fatalf("link %q is not normalized: %q, %v", l, n, err)
			}
		}
	})
}
