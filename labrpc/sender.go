package labrpc

import (
	"bytes"
	"reflect"
	"runtime"
	"strconv"
)

// Which server sends on an end? Lab harnesses give every server its own
// ends to the others, named at random, so an end's name says nothing.
// What labrpc can see is the goroutine that calls: a Raft peer calls from
// its own methods (ticker, sendRequestVote), whose receiver is the very
// value it registered with its server (MakeService(rf)). So, while the
// trace is on, the first calls on an end read the calling goroutine's
// stack and look for a frame whose receiver, as the stack prints it,
// is a pointer a server registered as a service. The answer is kept for
// the end; after senderTries calls without one, the end is taken to
// belong to no server (a client's clerk, the tester) and the timeline
// groups it under the server it reaches.

// senderTries is how many traced calls on an end may look for its sender.
const senderTries = 4

// sender returns the server whose goroutines call on e, or nil if none
// can be shown (yet).
func (e *ClientEnd) sender() interface{} {
	e.mu.Lock()
	if e.senderKnown || e.senderTries >= senderTries {
		defer e.mu.Unlock()
		return e.from
	}
	e.senderTries++
	e.mu.Unlock()

	from := e.net.serverCalling()
	e.mu.Lock()
	defer e.mu.Unlock()
	if from != nil && !e.senderKnown {
		e.from, e.senderKnown = from, true
	}
	return e.from
}

// serverCalling returns the server one of whose services is the receiver
// of a method on the calling goroutine's stack, innermost first, or nil.
func (n *Network) serverCalling() interface{} {
	var buf [8 << 10]byte
	ptrs := receiverWords(buf[:runtime.Stack(buf[:], false)])
	if len(ptrs) == 0 {
		return nil
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, p := range ptrs {
		for name, s := range n.servers {
			if s.hasReceiver(p) {
				return name
			}
		}
	}
	return nil
}

// receiverWords returns the first argument word of every method frame
// (a function name with ").", as "pkg.(*Raft).ticker") of a goroutine's
// stack trace, innermost first. A word the trace marks as possibly stale
// ("0xc000123000?") is kept: it is only compared with the pointers that
// servers registered.
func receiverWords(stack []byte) []uintptr {
	var out []uintptr
	for _, line := range bytes.Split(stack, []byte("\n")) {
		if len(line) == 0 || line[0] == '\t' || !bytes.Contains(line, []byte(").")) {
			continue
		}
		open := bytes.LastIndexByte(line, '(')
		if open < 0 || !bytes.HasSuffix(line, []byte(")")) {
			continue
		}
		word := line[open+1 : len(line)-1]
		if i := bytes.IndexByte(word, ','); i >= 0 {
			word = word[:i]
		}
		word = bytes.TrimSuffix(bytes.TrimSpace(word), []byte("?"))
		if !bytes.HasPrefix(word, []byte("0x")) {
			continue
		}
		p, err := strconv.ParseUint(string(word[2:]), 16, 64)
		if err == nil && p != 0 {
			out = append(out, uintptr(p))
		}
	}
	return out
}

// receiverPointer is rcvr's address if it is a pointer, else 0.
func receiverPointer(rcvr interface{}) uintptr {
	v := reflect.ValueOf(rcvr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return 0
	}
	return v.Pointer()
}

// hasReceiver reports whether p is the address of one of rs's services.
func (rs *Server) hasReceiver(p uintptr) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.receivers {
		if r == p {
			return true
		}
	}
	return false
}
