package crawler

import (
	"sync"
	"time"

	"github.com/temoto/robotstxt"
)

// hostState is the politeness state of one host (a normalised host[:port],
// see HostKey). PoliteFetcher.hosts owns it: a hostState is created there and
// never removed while the PoliteFetcher lives.
//
// Its rules, one transition method per event:
//
//   - a request to the host is reserved (start): it may begin no sooner than
//     the later of now, next and notBefore; next becomes that time plus
//     interval. The in-flight bound is the capacity of slots, taken before
//     start and given back when the response is read (acquire, release).
//   - a reserved request's time has come (begin): it starts only if no
//     backOff or seed moved notBefore past now while it waited; otherwise its
//     reservation is given up (as by unstart) and it must reserve again.
//   - a reserved request is given up before it started (unstart, when its
//     context ends while it waits): next moves back to the reserved time,
//     unless another request was reserved after it. Giving up the same
//     reservation twice changes nothing more.
//   - a response asks to back off (backOff, from a 429 or 503 with
//     Retry-After): notBefore moves to now plus the delay, never backwards.
//   - another process hands over its pacing (seed, from SetHostNotBefore):
//     notBefore moves to the given time, never backwards.
//   - robots.txt is loaded for a scheme (robotsLoaded): its rules replace the
//     old ones until they expire, and interval becomes the largest of
//     Config.Delay and the Crawl-delays (capped by MaxCrawlDelay) of the
//     schemes' latest robots.txt files: the host's schemes share its pacing,
//     so the slowest one asked for holds for all.
//   - a load of robots.txt is abandoned because its caller's context ended
//     (robotsAbandoned): the rules are forgotten, and the next caller loads
//     them again.
//   - a request for the rules (rulesFor): current rules are returned; missing,
//     abandoned or expired ones are replaced by a new, loading entry that the
//     caller must load.
//
// Every method takes the current time as an argument, so the rules can be
// tested without a clock.
type hostState struct {
	slots chan struct{} // requests in flight; cap(slots) is the limit

	mu        sync.Mutex    // protects following
	base      time.Duration // Config.Delay: the interval when robots.txt sets none
	interval  time.Duration // minimum gap between the starts of two requests
	next      time.Time     // earliest start allowed by interval
	notBefore time.Time     // earliest start allowed by Retry-After or a seed
	reserved  uint64        // reservations made by start so far
	robots    map[string]*robotsRules
	// crawlDelays are the Crawl-delays of the latest robots.txt of each
	// scheme; they outlive a reload of the rules.
	crawlDelays map[string]time.Duration
}

// reservation is a start time that start handed out.
type reservation struct {
	at  time.Time // when the request may begin
	seq uint64    // hostState.reserved just after it was made
}

// robotsRules are the robots.txt rules of one origin (scheme and host). The
// fields below done are written once, by the loader, before done is closed,
// and only read after it is closed.
type robotsRules struct {
	done chan struct{} // closed once the fields below are set

	data *robotstxt.RobotsData // nil: everything allowed
	// err is why robots.txt could not be read; every URL of the origin is
	// then refused.
	err error
	// abandoned: the loader's context ended, so err says nothing about the
	// host; the entry is no longer in hostState.robots.
	abandoned bool
	expires   time.Time // when the rules must be loaded again
}

func newHostState(inFlight int, delay time.Duration) *hostState {
	return &hostState{
		slots:    make(chan struct{}, inFlight),
		base:     delay,
		interval: delay,
		robots:   make(map[string]*robotsRules),

		crawlDelays: make(map[string]time.Duration),
	}
}

// start reserves the start of a request: the returned reservation's time is
// when the request may begin (not before now); next moves past it.
func (h *hostState) start(now time.Time) reservation {
	h.mu.Lock()
	defer h.mu.Unlock()
	at := latestTime(now, h.next, h.notBefore)
	h.next = at.Add(h.interval)
	h.reserved++
	return reservation{at: at, seq: h.reserved}
}

// begin reports whether the request reserved as r may start now, its
// reserved time having come. It may not if notBefore moved past now while it
// waited (a Retry-After from another request, or a seed): the reservation is
// then given up, as by unstart, and the caller must reserve again.
func (h *hostState) begin(now time.Time, r reservation) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.notBefore.After(now) {
		return true
	}
	h.unstartLocked(r)
	return false
}

// unstart gives back reservation r if no request was reserved after it.
func (h *hostState) unstart(r reservation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unstartLocked(r)
}

func (h *hostState) unstartLocked(r reservation) {
	// Comparing sequence numbers, not times: the interval may have changed
	// since r was made (robots.txt loaded), and then r.at plus the interval
	// would name another request's reservation.
	if h.reserved == r.seq && h.next.After(r.at) {
		h.next = r.at
	}
}

// backOff records a server's request to wait d before the next request to
// the host, from now. It returns the time no request may start before.
func (h *hostState) backOff(now time.Time, d time.Duration) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notBefore = latestTime(h.notBefore, now.Add(d))
	return h.notBefore
}

// seed records that no request may start before t.
func (h *hostState) seed(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notBefore = latestTime(h.notBefore, t)
}

// pacing returns the earliest time a new request could start, if it were
// reserved now, and the in-flight limit.
func (h *hostState) pacing(now time.Time) (time.Time, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return latestTime(now, h.next, h.notBefore), cap(h.slots)
}

// heldUntil returns notBefore: the time until which a Retry-After or a
// seed holds back every request to the host (in the past if none does).
func (h *hostState) heldUntil() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.notBefore
}

// rulesFor returns the robots.txt rules for scheme. If load is true the
// caller must load them and call robotsLoaded or robotsAbandoned; otherwise
// it waits for r.done.
func (h *hostState) rulesFor(scheme string, now time.Time) (r *robotsRules, load bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r = h.robots[scheme]
	if r != nil && !(r.loaded() && !now.Before(r.expires)) {
		return r, false
	}
	r = &robotsRules{done: make(chan struct{})}
	h.robots[scheme] = r
	return r, true
}

// loadedRules returns the rules for scheme if they are loaded, or nil.
func (h *hostState) loadedRules(scheme string) *robotsRules {
	h.mu.Lock()
	r := h.robots[scheme]
	h.mu.Unlock()
	if r == nil || !r.loaded() {
		return nil
	}
	return r
}

// robotsLoaded completes the load of r, the rules for scheme: data (nil:
// everything allowed) or err (everything refused), valid until expires.
// crawlDelay is the interval robots.txt asks for, already capped; it applies
// to the whole host, with the other schemes' ones.
func (h *hostState) robotsLoaded(r *robotsRules, scheme string, data *robotstxt.RobotsData, err error, crawlDelay time.Duration, expires time.Time) {
	h.mu.Lock()
	r.data, r.err, r.expires = data, err, expires
	h.crawlDelays[scheme] = crawlDelay
	h.interval = h.base
	for _, d := range h.crawlDelays {
		h.interval = max(h.interval, d)
	}
	h.mu.Unlock()
	close(r.done)
}

// robotsAbandoned completes the load of r without rules: its loader's
// context ended. err, which says so, goes to the callers already waiting; the
// next caller loads the rules again.
func (h *hostState) robotsAbandoned(r *robotsRules, scheme string, err error) {
	h.mu.Lock()
	r.err, r.abandoned = err, true
	if h.robots[scheme] == r {
		delete(h.robots, scheme)
	}
	h.mu.Unlock()
	close(r.done)
}

func (r *robotsRules) loaded() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func latestTime(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}
