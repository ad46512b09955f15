package crawler

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrUnsupportedURL is wrapped by the errors Normalize returns for URLs the
// crawler does not follow: relative, not http(s), or without a host.
var ErrUnsupportedURL = errors.New("crawler: unsupported URL")

// Normalize returns the canonical form of an absolute http or https URL, the
// form in which the crawler compares URLs: the scheme and host are lower-cased,
// an internationalised host name becomes its ASCII (punycode) form
// ("bücher.example" is "xn--bcher-kva.example"), userinfo ("user:pass@") is
// dropped, an IPv6 address takes its canonical form ("[::1]"), a port is
// written in decimal without leading zeros (one above 65535 is refused) and
// a default port (:80 for http, :443 for https) is removed,
// percent-escapes of unreserved characters (letters, digits, '-', '.', '_',
// '~') are decoded and the hex digits of the other escapes upper-cased (in
// the path and the query), "." and ".." path segments are resolved, an empty
// path becomes "/", and the fragment is dropped. The query is otherwise kept
// as it is. Normalize is idempotent: Normalize of its own output returns that
// output unchanged.
func Normalize(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupportedURL, err)
	}
	return normalizeURL(u)
}

func normalizeURL(u *url.URL) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%w: scheme %q", ErrUnsupportedURL, u.Scheme)
	}
	if u.Opaque != "" {
		return "", fmt.Errorf("%w: opaque %s URL", ErrUnsupportedURL, scheme)
	}
	host, err := normalizeHost(scheme, u.Host)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(removeDotSegments(normalizeEscapes(u.EscapedPath())))
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(normalizeEscapes(u.RawQuery))
	}
	return b.String(), nil
}

func normalizeHost(scheme, hostport string) (string, error) {
	hostport = strings.ToLower(hostport)
	host, port := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		host, port = hostport[:i], hostport[i+1:]
	}
	if host == "" {
		return "", fmt.Errorf("%w: no host", ErrUnsupportedURL)
	}
	if !isASCII(host) {
		ascii, err := idnaProfile.ToASCII(host)
		if err != nil {
			return "", fmt.Errorf("%w: host %q: %v", ErrUnsupportedURL, host, err)
		}
		host = ascii
	}
	if !validHost(host) {
		return "", fmt.Errorf("%w: invalid host %q", ErrUnsupportedURL, host)
	}
	if strings.HasPrefix(host, "[") {
		// One spelling per address: "[0:0::1]" and "[::0001]" are "[::1]".
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", fmt.Errorf("%w: invalid IPv6 address %q", ErrUnsupportedURL, host)
		}
		host = "[" + addr.String() + "]"
	}
	if port != "" {
		// One spelling per port: "0080" is 80, the default for http.
		for _, r := range port {
			if r < '0' || r > '9' {
				return "", fmt.Errorf("%w: invalid port %q", ErrUnsupportedURL, port)
			}
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", fmt.Errorf("%w: invalid port %q", ErrUnsupportedURL, port)
		}
		port = strconv.FormatUint(n, 10)
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return host, nil
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port), nil
}

// idnaProfile maps an internationalised host name to ASCII as a browser
// looking it up would (UTS #46 non-transitional mapping), but lets '_'
// through, as validHost does for ASCII names.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.StrictDomainName(false))

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// validHost accepts a lower-case host name, IPv4 address or bracketed IPv6
// address: letters, digits, '-', '.' and '_', or hex digits, ':' and '.'
// inside brackets.
func validHost(host string) bool {
	allowed := "abcdefghijklmnopqrstuvwxyz0123456789-._"
	if strings.HasPrefix(host, "[") {
		if len(host) < 4 || !strings.HasSuffix(host, "]") {
			return false
		}
		host, allowed = host[1:len(host)-1], "0123456789abcdef:."
		if !strings.Contains(host, ":") {
			return false
		}
	}
	for _, r := range host {
		if !strings.ContainsRune(allowed, r) {
			return false
		}
	}
	return true
}

// removeDotSegments resolves "." and ".." segments of an absolute path as in
// RFC 3986 section 5.2.4, keeping a trailing slash. ".." never climbs above
// the root. The empty path becomes "/".
func removeDotSegments(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}

// normalizeEscapes decodes the percent-escapes of unreserved characters
// (letters, digits, '-', '.', '_', '~'), which name the same resource
// escaped or not (RFC 3986 section 6.2.2.2), and upper-cases the hex digits
// of the other escapes (section 6.2.2.1), which are kept: "/%70rivate%2f" is
// "/private%2F". A '%' not followed by two hex digits is kept as it is.
// robots.txt rules and URLs are compared in this form too, as RFC 9309 asks.
func normalizeEscapes(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if isUnreserved(byte(c)) {
				b.WriteByte(byte(c))
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(s[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
