package crawler

import (
	"errors"
	"testing"
	"time"

	"github.com/temoto/robotstxt"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Each rule of hostState, one event at a time, with explicit times.
func TestHostStateStartSpacesRequestsByInterval(t *testing.T) {
	h := newHostState(2, 10*time.Second)
	for i, want := range []time.Time{t0, t0.Add(10 * time.Second), t0.Add(20 * time.Second)} {
		if got := h.start(t0).at; !got.Equal(want) {
			t.Errorf("start %d at %v, want %v", i, got, want)
		}
	}
	// Later than the pacing asks: starts now.
	if got := h.start(t0.Add(time.Hour)).at; !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("late start at %v, want now", got)
	}
}

func TestHostStateBackOffHoldsEveryRequestAndNeverMovesBack(t *testing.T) {
	h := newHostState(1, 0)
	if got := h.backOff(t0, time.Minute); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("backOff until %v, want t0+1m", got)
	}
	if got := h.backOff(t0.Add(time.Second), time.Second); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("a shorter backOff moved notBefore to %v", got)
	}
	for range 2 {
		if got := h.start(t0).at; !got.Equal(t0.Add(time.Minute)) {
			t.Errorf("start during backOff at %v, want t0+1m", got)
		}
	}
}

func TestHostStateSeedOnlyDelays(t *testing.T) {
	tests := []struct {
		name  string
		seeds []time.Time
		want  time.Time
	}{
		{"no seed", nil, t0},
		{"later seed", []time.Time{t0.Add(time.Hour)}, t0.Add(time.Hour)},
		{"earlier seed", []time.Time{t0.Add(-time.Hour)}, t0},
		{"later then earlier", []time.Time{t0.Add(time.Hour), t0.Add(time.Minute)}, t0.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostState(1, 0)
			for _, s := range tt.seeds {
				h.seed(s)
			}
			if next, _ := h.pacing(t0); !next.Equal(tt.want) {
				t.Errorf("pacing next %v, want %v", next, tt.want)
			}
			if got := h.start(t0).at; !got.Equal(tt.want) {
				t.Errorf("start at %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHostStatePacingReservesNothing(t *testing.T) {
	h := newHostState(3, 5*time.Second)
	h.start(t0)
	for range 2 {
		next, limit := h.pacing(t0)
		if !next.Equal(t0.Add(5*time.Second)) || limit != 3 {
			t.Errorf("pacing = %v, %d; want t0+5s, 3", next, limit)
		}
	}
}

func TestHostStateRobotsCrawlDelaySetsInterval(t *testing.T) {
	tests := []struct {
		name       string
		base       time.Duration
		crawlDelay time.Duration
		want       time.Duration
	}{
		{"crawl-delay larger", time.Second, 3 * time.Second, 3 * time.Second},
		{"config delay larger", 4 * time.Second, time.Second, 4 * time.Second},
		{"none", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostState(1, tt.base)
			r, _ := h.rulesFor("http", t0)
			h.robotsLoaded(r, "http", nil, nil, tt.crawlDelay, t0.Add(time.Hour))
			h.start(t0)
			if got := h.start(t0).at; !got.Equal(t0.Add(tt.want)) {
				t.Errorf("second start at +%v, want +%v", got.Sub(t0), tt.want)
			}
		})
	}
}

func TestHostStateRulesLoadedOnceUntilTheyExpire(t *testing.T) {
	h := newHostState(1, 0)
	r1, load := h.rulesFor("https", t0)
	if !load {
		t.Fatal("first caller is not told to load")
	}
	if r, load := h.rulesFor("https", t0); load || r != r1 {
		t.Fatal("a caller during the load is told to load again")
	}
	if r, load := h.rulesFor("http", t0); !load || r == r1 {
		t.Fatal("another scheme shares the rules")
	}
	data, err := robotstxt.FromString("User-agent: *\nDisallow: /x\n")
	if err != nil {
		t.Fatal(err)
	}
	h.robotsLoaded(r1, "https", data, nil, 0, t0.Add(time.Hour))
	if h.loadedRules("https") != r1 {
		t.Error("loaded rules not reported")
	}
	if r, load := h.rulesFor("https", t0.Add(time.Hour-time.Nanosecond)); load || r != r1 {
		t.Error("rules reloaded before they expired")
	}
	r2, load := h.rulesFor("https", t0.Add(time.Hour))
	if !load || r2 == r1 {
		t.Fatal("expired rules not reloaded")
	}
	if h.loadedRules("https") != nil {
		t.Error("rules being reloaded reported as loaded")
	}
}

func TestHostStateAbandonedLoadIsLoadedAgain(t *testing.T) {
	h := newHostState(1, 0)
	r1, _ := h.rulesFor("http", t0)
	h.robotsAbandoned(r1, "http", errors.New("cancelled"))
	if !r1.loaded() || !r1.abandoned {
		t.Error("waiters on an abandoned load are not released")
	}
	if r, load := h.rulesFor("http", t0); !load || r == r1 {
		t.Error("next caller does not load the abandoned rules again")
	}
}

func TestHostStateUnstartGivesBackOnlyTheLastReservation(t *testing.T) {
	h := newHostState(3, 10*time.Second)
	h.start(t0)
	r := h.start(t0) // t0+10s
	h.unstart(r)
	again := h.start(t0)
	if !again.at.Equal(r.at) {
		t.Errorf("after giving back the last reservation, next start at +%v, want +10s", again.at.Sub(t0))
	}
	// t0+10s is taken again and t0+20s is next; a later reservation
	// keeps an earlier one from being given back.
	later := h.start(t0) // t0+20s
	h.unstart(again)
	if got := h.start(t0).at; !got.Equal(later.at.Add(10 * time.Second)) {
		t.Errorf("an earlier reservation was given back over a later one: next at +%v, want +30s", got.Sub(t0))
	}
}

// Giving back a reservation twice (or one given back already and reserved
// again by another request) must not free a second start time: two
// requests would then start at once.
func TestHostStateUnstartTwiceGivesBackOnce(t *testing.T) {
	h := newHostState(3, 10*time.Second)
	h.start(t0)          // t0
	r := h.start(t0)     // t0+10s
	h.unstart(r)         // next is t0+10s again
	taken := h.start(t0) // another request takes t0+10s
	h.unstart(r)         // stale: must change nothing
	if got := h.start(t0).at; !got.Equal(taken.at.Add(10 * time.Second)) {
		t.Errorf("a stale give-back freed t0+10s for a second request: next start at +%v, want +20s", got.Sub(t0))
	}
}

// A reservation made under one interval is not mistaken for a later one
// made after robots.txt changed the interval (it used to be matched by
// time: its start plus the new interval).
func TestHostStateUnstartAfterIntervalChangeKeepsLaterReservation(t *testing.T) {
	h := newHostState(3, 0)
	h.seed(t0.Add(time.Minute)) // a Retry-After: both wait for t0+1m
	early := h.start(t0)        // t0+1m, interval 0
	r, _ := h.rulesFor("https", t0)
	h.robotsLoaded(r, "https", nil, nil, 10*time.Second, t0.Add(time.Hour))
	late := h.start(t0) // t0+1m too, next is t0+1m10s
	h.unstart(early)    // the earlier waiter gives up
	if !late.at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("late reservation at +%v, want +1m", late.at.Sub(t0))
	}
	if got := h.start(t0).at; !got.Equal(late.at.Add(10 * time.Second)) {
		t.Errorf("next start at +%v, only %v after a reserved one; want the Crawl-delay of 10s", got.Sub(t0), got.Sub(late.at))
	}
}

// A request reserved before a backOff does not start during it: begin
// refuses and gives the reservation back; after the backOff it may start.
func TestHostStateBeginRefusesDuringBackOffReservedBeforeIt(t *testing.T) {
	h := newHostState(3, 10*time.Second)
	h.start(t0)
	r := h.start(t0) // t0+10s
	h.backOff(t0.Add(time.Second), time.Minute)
	if h.begin(r.at, r) {
		t.Fatal("a request reserved before the backOff began during it")
	}
	again := h.start(r.at)
	if !again.at.Equal(t0.Add(time.Minute + time.Second)) {
		t.Errorf("reserved again for +%v, want the end of the backOff (+1m1s)", again.at.Sub(t0))
	}
	if !h.begin(again.at, again) {
		t.Error("a request reserved for the end of the backOff may not begin")
	}
}

// The host's pacing is the slowest Crawl-delay of its schemes' robots.txt
// files, whatever order they load in; a reload replaces only its own.
func TestHostStateCrawlDelayIsTheLargestOfItsSchemes(t *testing.T) {
	h := newHostState(1, time.Second)
	load := func(scheme string, d time.Duration) {
		r, load := h.rulesFor(scheme, t0)
		if !load {
			t.Fatalf("%s rules not to be loaded", scheme)
		}
		h.robotsLoaded(r, scheme, nil, nil, d, t0)
	}
	gap := func() time.Duration {
		a := h.start(t0.Add(time.Hour)).at
		return h.start(t0.Add(time.Hour)).at.Sub(a)
	}
	load("https", 5*time.Second)
	load("http", 0) // loaded later, asks for nothing
	if g := gap(); g != 5*time.Second {
		t.Errorf("after https Crawl-delay 5s and http none: gap %v, want 5s", g)
	}
	load("https", 2*time.Second) // expired (expires t0) and reloaded
	if g := gap(); g != 2*time.Second {
		t.Errorf("after https reloaded with 2s: gap %v, want 2s", g)
	}
}
