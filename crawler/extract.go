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
// r that a crawler may follow, in document order without duplicates. Each
// href is resolved against the document's first <base href> (itself resolved
// against base), or against base when there is none, and then normalised with
// Normalize; hrefs that do not resolve to an http(s) URL are dropped. base may
// be nil, in which case only absolute hrefs are kept.
//
// Links marked rel="nofollow" are dropped, and a document whose
// <meta name="robots"> says nofollow (or none) has no links at all.
// HTTPFetcher also honours a <meta> named after its user agent.
//
// ExtractLinks never panics on malformed input; on a read error it returns the
// links found so far together with the error.
func ExtractLinks(base *url.URL, r io.Reader) ([]string, error) {
	doc, err := extract(base, r, "")
	if doc.robots.noFollow {
		return []string{}, err
	}
	return doc.links, err
}

// extracted is what extract found in an HTML document.
type extracted struct {
	links []string // followable <a href> targets, before <meta> nofollow
	// noFollow are the targets of <a rel="nofollow"> links, at most
	// MaxSkippedPerPage, not in links.
	noFollow []string
	robots   robotsDirectives
}

// robotsDirectives are the indexing directives of a page, from
// <meta name="robots"> or an X-Robots-Tag header.
type robotsDirectives struct {
	noFollow bool
	noIndex  bool
}

// extract reads an HTML document: its links and the directives of its
// <meta name="robots"> and <meta name=agent> tags (agent may be empty).
func extract(base *url.URL, r io.Reader, agent string) (extracted, error) {
	z := html.NewTokenizer(r)
	var doc extracted
	var hrefs, noFollowHrefs []string
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
				a := attrs(z)
				href, ok := a["href"]
				switch {
				case ok && !hasToken(a["rel"], "nofollow"):
					hrefs = append(hrefs, href)
				case ok && len(noFollowHrefs) < MaxSkippedPerPage:
					noFollowHrefs = append(noFollowHrefs, href)
				}
			case "base":
				// Only the first <base href> counts, wherever the links are.
				if href, ok := attrs(z)["href"]; ok && !sawBase {
					sawBase = true
					if ref, err := url.Parse(href); err == nil {
						if base != nil {
							docBase = base.ResolveReference(ref)
						} else if ref.IsAbs() {
							docBase = ref
						}
					}
				}
			case "meta":
				a := attrs(z)
				if n := strings.ToLower(a["name"]); n == "robots" || (agent != "" && n == strings.ToLower(agent)) {
					doc.robots.add(a["content"])
				}
			}
		}
	}
	if docBase == nil {
		docBase = base
	}
	doc.links = resolveLinks(docBase, hrefs, nil)
	doc.noFollow = resolveLinks(docBase, noFollowHrefs, doc.links)
	return doc, readErr
}

// resolveLinks resolves hrefs against base and normalises them, dropping
// those that are not http(s) URLs, repeated, or in not.
func resolveLinks(base *url.URL, hrefs, not []string) []string {
	links := make([]string, 0, len(hrefs))
	seen := make(map[string]bool, len(hrefs)+len(not))
	for _, l := range not {
		seen[l] = true
	}
	for _, href := range hrefs {
		ref, err := url.Parse(href)
		if err != nil {
			continue
		}
		if base != nil {
			ref = base.ResolveReference(ref)
		}
		link, err := normalizeURL(ref)
		if err != nil || seen[link] {
			continue
		}
		seen[link] = true
		links = append(links, link)
	}
	return links
}

// add records the directives of a comma-separated list such as
// "noindex, nofollow"; unknown ones are ignored.
func (d *robotsDirectives) add(list string) {
	for _, v := range strings.Split(list, ",") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "nofollow":
			d.noFollow = true
		case "noindex":
			d.noIndex = true
		case "none":
			d.noFollow, d.noIndex = true, true
		}
	}
}

// xRobotsTag returns the directives of X-Robots-Tag header values that
// apply to agent: those without an agent prefix, and those prefixed with
// "agent:" (case-insensitive). Prefixed values for other agents are ignored.
func xRobotsTag(values []string, agent string) robotsDirectives {
	var d robotsDirectives
	for _, v := range values {
		if name, rest, ok := strings.Cut(v, ":"); ok {
			name = strings.TrimSpace(name)
			if isUserAgentPrefix(name) {
				if !strings.EqualFold(name, agent) {
					continue
				}
				v = rest
			}
		}
		d.add(v)
	}
	return d
}

// isUserAgentPrefix reports whether the text before a ':' in an X-Robots-Tag
// value names a user agent rather than a directive with a value, such as
// "unavailable_after: <date>" or "max-snippet: 20".
func isUserAgentPrefix(name string) bool {
	if name == "" || strings.ContainsAny(name, " ,\t") {
		return false
	}
	switch strings.ToLower(name) {
	case "unavailable_after", "max-snippet", "max-image-preview", "max-video-preview":
		return false
	}
	return true
}

// hasToken reports whether the space-separated list has token,
// case-insensitively.
func hasToken(list, token string) bool {
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(f, token) {
			return true
		}
	}
	return false
}

// attrs returns the attributes of the current tag, keys lower-case (as the
// tokenizer gives them), with leading and trailing whitespace removed from
// values as browsers do for URLs. The first of repeated attributes wins.
func attrs(z *html.Tokenizer) map[string]string {
	m := make(map[string]string, 2)
	for {
		key, val, more := z.TagAttr()
		if k := string(key); k != "" {
			if _, dup := m[k]; !dup {
				m[k] = strings.TrimSpace(string(val))
			}
		}
		if !more {
			return m
		}
	}
}
