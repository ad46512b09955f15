package labrpc

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// A network belongs to the synctest bubble it was made in, or to none: its
// channels and timers do (see testing/synctest). Used from elsewhere, the
// runtime stops the program with a fatal error naming neither labrpc nor
// the network (from outside its bubble), or virtual time never advances
// and the test hangs (from inside a bubble, on a network made outside).
// checkBubble turns both into a panic that says what happened.

// Virtual time starts at bubbleEpoch in every bubble; a clock before
// bubbleEnd (twenty years on) looks virtual.
var (
	bubbleEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	bubbleEnd   = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// clockLooksVirtual reports whether time.Now reads like a bubble's clock:
// within twenty years of bubbleEpoch. It is cheap and only a hint; the
// stack header (bubbleID) decides.
func clockLooksVirtual() bool {
	t := time.Now().Unix()
	return t >= bubbleEpoch && t < bubbleEnd
}

// currentBubble is bubbleID, skipping the stack when the clock shows that
// the caller is in no bubble.
func currentBubble() uint64 {
	if !clockLooksVirtual() {
		return 0
	}
	return bubbleID()
}

// bubbleID returns the id of the synctest bubble the calling goroutine
// belongs to, or 0 for none, as its stack trace's header shows it:
// "goroutine 7 [running, synctest bubble 3]:".
func bubbleID() uint64 {
	var buf [256]byte
	header := buf[:runtime.Stack(buf[:], false)]
	if i := bytes.IndexByte(header, '\n'); i >= 0 {
		header = header[:i]
	}
	const mark = "synctest bubble "
	i := bytes.Index(header, []byte(mark))
	if i < 0 {
		return 0
	}
	rest := header[i+len(mark):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	id, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// checkBubble panics if the calling goroutine is not in the network's
// bubble (or is in one when the network is in none). what names the
// operation for the message.
func (n *Network) checkBubble(what string) {
	if clockLooksVirtual() == (n.bubble != 0) {
		// The common case. (A network used from a second bubble passes
		// here; the runtime stops that with its own fatal error.)
		return
	}
	here := bubbleID()
	if here == n.bubble {
		return
	}
	switch {
	case n.bubble == 0:
		panic(fmt.Sprintf("labrpc: %s inside a synctest bubble on a network made outside it; "+
			"make the network inside the bubble (in the function synctest.Test or labtest.Virtual runs)", what))
	case here == 0:
		panic(fmt.Sprintf("labrpc: %s outside the synctest bubble the network was made in; "+
			"a network made inside a bubble must be used only inside it", what))
	default:
		panic(fmt.Sprintf("labrpc: %s in a synctest bubble other than the one the network was made in; "+
			"a network belongs to the bubble that made it", what))
	}
}
