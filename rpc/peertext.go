package rpc

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Text a peer chose (a service/method name, a gob type name inside a
// decode error) goes back to it, and into the server's log, only cut to a
// bound: a 4 MB method name must not come back as an 8 MB error, nor fill
// the log. In the log it is quoted too, so that a name holding "\n" cannot
// forge a line.

const (
	// MaxErrorBytes bounds the text of every error a server sends (see
	// EncodeError): longer texts are cut to it and marked with the number
	// of bytes cut, as in "…(4194304 bytes cut)".
	MaxErrorBytes = 1 << 10

	// maxNameBytes bounds a service/method name quoted from a request, in
	// an error or a log line, and the name a response echoes.
	maxNameBytes = 256

	// maxLogTextBytes bounds peer-chosen text in one log line.
	maxLogTextBytes = 512
)

// cutText returns s if it has at most max bytes, or else its first bytes
// (at most max, whole UTF-8 characters) and a mark saying how many bytes
// were cut.
func cutText(s string, max int) string {
	head, cut := cutHead(s, max)
	if cut == 0 {
		return s
	}
	return head + cutMark(cut)
}

// quoteText returns s quoted as %q does, cut as cutText cuts it, the mark
// after the closing quote.
func quoteText(s string, max int) string {
	head, cut := cutHead(s, max)
	if cut == 0 {
		return strconv.Quote(s)
	}
	return strconv.Quote(head) + cutMark(cut)
}

// quoteName quotes a service/method name taken from a request.
func quoteName(name string) string { return quoteText(name, maxNameBytes) }

// echoName is the service/method name a response repeats: the request's,
// cut if it is longer than any a server registers. Clients match responses
// by sequence number, never by this name.
func echoName(name string) string { return cutText(name, maxNameBytes) }

// logText quotes and cuts peer-chosen text (an error that may quote it,
// a panic value) for a log line.
func logText(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case error:
		s = v.Error()
	default:
		s = fmt.Sprint(v)
	}
	return quoteText(s, maxLogTextBytes)
}

func cutHead(s string, max int) (head string, cut int) {
	if len(s) <= max {
		return s, 0
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], len(s) - n
}

func cutMark(n int) string { return fmt.Sprintf("…(%d bytes cut)", n) }
