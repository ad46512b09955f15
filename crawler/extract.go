package crawler

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// ExtractLinks returns the targets of the <a href> links in the HTML read from
// r, in document order without duplicates. Each href is resolved against the
// document's first <base href> (itself resolved against base), or against base
// when there is none, and then normalised with Normalize; hrefs that do not
// resolve to an http(s) URL are dropped. base may be nil, in which case only
// absolute hrefs are kept. ExtractLinks never panics on malformed input; on a
// read error it returns the links found so far together with the error.
func ExtractLinks(base *url.URL, r io.Reader) ([]string, error) {
	z := html.NewTokenizer(r)
	var hrefs []string
	var docBase *url.URL
	sawBase := false
	var readErr error
loop:
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); !errors.Is(err, io.EOF) {
				readErr = fmt.Errorf("crawler: read html: %w", err)
			}
			break loop
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			if !hasAttr {
				continue
			}
			switch string(name) {
			case "a":
				if href, ok := attr(z, "href"); ok {
					hrefs = append(hrefs, href)
				}
			case "base":
				// Only the first <base href> counts, wherever the links are.
				if href, ok := attr(z, "href"); ok && !sawBase {
					sawBase = true
					if ref, err := url.Parse(href); err == nil {
						if base != nil {
							docBase = base.ResolveReference(ref)
						} else if ref.IsAbs() {
							docBase = ref
						}
					}
				}
			}
		}
	}
	if docBase == nil {
		docBase = base
	}
	links := make([]string, 0, len(hrefs))
	seen := make(map[string]bool, len(hrefs))
	for _, href := range hrefs {
		ref, err := url.Parse(href)
		if err != nil {
			continue
		}
		if docBase != nil {
			ref = docBase.ResolveReference(ref)
		}
		link, err := normalizeURL(ref)
		if err != nil || seen[link] {
			continue
		}
		seen[link] = true
		links = append(links, link)
	}
	return links, readErr
}

// attr returns the value of the named attribute of the current tag, with
// leading and trailing whitespace removed as browsers do for URLs.
func attr(z *html.Tokenizer, name string) (string, bool) {
	for {
		key, val, more := z.TagAttr()
		if string(key) == name {
			return strings.TrimSpace(string(val)), true
		}
		if !more {
			return "", false
		}
	}
}
