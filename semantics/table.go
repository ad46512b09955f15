package semantics

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Table defaults.
const (
	// DefaultLease is how long an idle session survives in a Table. It must
	// exceed any client's retry window, or a late retry of an executed call
	// could find its session gone.
	DefaultLease = 10 * time.Minute

	// DefaultMaxCalls is how many records (running or completed but not yet
	// acknowledged) one session may hold.
	DefaultMaxCalls = 1024

	// DefaultMaxSessions is how many sessions a Table holds at once. At
	// about 180 bytes per idle session that is some 12 MiB, plus the
	// replies the sessions keep until their clients acknowledge them
	// (bounded by DefaultMaxReplyBytes).
	DefaultMaxSessions = 65536

	// DefaultMaxReplyBytes bounds the replies a Table keeps for calls not
	// yet acknowledged, over all its sessions: 256 MiB.
	DefaultMaxReplyBytes = 256 << 20

	// DefaultMaxSessionReplyBytes bounds the replies one session keeps:
	// 16 MiB. A client acknowledges each call once it returns, so a
	// session keeps the replies of the calls completed after its oldest
	// unfinished one: with ordinary replies (16 KiB or less) a whole
	// window of DefaultMaxCalls fits, and so do four replies of the
	// default 4 MiB message limit. Sixteen sessions at this budget
	// exhaust DefaultMaxReplyBytes.
	DefaultMaxSessionReplyBytes = 16 << 20
)

// ErrWindowExceeded: the client has more unacknowledged calls outstanding
// (at or above its ack, running or completed) than the table keeps per
// session (TableConfig.MaxCalls). The request is refused and its method is
// not run. A call the client gave up on while its method runs does not
// count: the client's ack has passed it. So a client that keeps its
// window, agreed at Open, never meets this error, and it wraps
// ErrBadHeader: errors.Is(err, ErrBadHeader) holds, ClassOf reports it as
// rejected, and a remote caller gets the bad-header code with the table's
// text, which says what the session holds. Its own text does not call the
// header malformed.
var ErrWindowExceeded error = &kindError{
	msg:  "semrpc: too many unacknowledged calls in one session",
	kind: ErrBadHeader,
}

// ErrTooManySessions: Open found the table full of sessions that each have
// a call running, so none could be evicted. No session was opened. It wraps
// ErrRejected, so the handshake reads as not executed and may be retried
// later.
var ErrTooManySessions = fmt.Errorf("semrpc: too many sessions with calls running: %w", ErrRejected)

// ErrReplyBudget: the replies kept for calls not yet acknowledged, in the
// request's session or in the whole table, have reached their budget
// (TableConfig.MaxSessionReplyBytes, MaxReplyBytes). The NEW call is
// refused and its method not run; it wraps ErrRejected, so ClassOf reports
// it as rejected. Calls already recorded are still answered from their
// records: the budget frees itself as clients acknowledge their calls and
// as sessions close, expire or are evicted, never by dropping a record.
var ErrReplyBudget = fmt.Errorf("semrpc: reply budget exhausted (too many bytes of unacknowledged replies kept): %w", ErrRejected)

// errAborted is what waiters see when Abort is given a nil error.
var errAborted = errors.New("semantics: original attempt aborted before its method ran")

// Outcome is what the first execution of a call produced.
type Outcome struct {
	Reply any   // the reply value (usually a pointer) as the method left it
	Err   error // the method's own (application) error, or nil

	// Size is the memory, in bytes, that keeping Reply and Err holds, as
	// the caller of Finish estimates it (the rpc server walks the reply);
	// the table charges it against its reply budgets until the client
	// acknowledges the call. 0 (or less) charges nothing.
	Size int
}

// TableConfig configures a Table. The zero value, like a nil *TableConfig,
// means the defaults.
type TableConfig struct {
	// Lease is how long a session may stay idle (no request, no call
	// finishing) before the table forgets it. Default DefaultLease. It must
	// exceed any client's retry window; a request that arrives later is
	// refused (ErrSessionExpired), never run again.
	Lease time.Duration

	// Now is the clock. Default time.Now. Tests inject a fake one.
	Now func() time.Time

	// Epoch is the server epoch that every header must carry. 0 means draw
	// a random non-zero one (crypto/rand), which is right for a table that
	// starts empty. A table rebuilt with Restore from durable records keeps
	// the epoch those records were made under.
	Epoch uint64

	// MaxCalls caps the records one session holds for calls its client
	// has not acknowledged (running or completed, at or above its ack); a
	// NEW call beyond it fails with ErrWindowExceeded. Default
	// DefaultMaxCalls. Clients learn it at Open and keep their window of
	// outstanding calls within it.
	MaxCalls int

	// MaxSessions caps the sessions the table holds. Open on a full table
	// first drops the expired sessions, then evicts one session that has
	// no call running (one holding no records if there is any, the least
	// recently active first), and fails with ErrTooManySessions if every
	// session has a call running. Finding the session to evict costs
	// O(1): the idle sessions are kept in two lists ordered by last
	// activity, and the expired ones, dropped from their fronts, cost one
	// step each once. Sessions rebuilt with Restore and RestoreSession are
	// not limited: a table rebuilt above the cap does not grow, but stays
	// above it until sessions expire or close. Default DefaultMaxSessions.
	MaxSessions int

	// MaxReplyBytes caps the bytes of replies the table keeps for calls
	// their clients have not acknowledged, over all sessions, each reply
	// counted as its Outcome.Size. While the kept bytes are at or above
	// it, NEW calls are refused with ErrReplyBudget (their methods not
	// run); duplicates of recorded calls are still answered, and no record
	// is dropped to make room. Calls admitted before the budget was
	// reached may finish above it, each by its own reply: the kept bytes
	// never exceed the budget by more than the replies of the calls
	// running when it was reached. Acknowledged records free their bytes
	// at once; a closed, expired or evicted session frees all of its.
	// Default DefaultMaxReplyBytes.
	MaxReplyBytes int64

	// MaxSessionReplyBytes is MaxReplyBytes for one session: while the
	// session keeps that many bytes or more, its NEW calls are refused
	// with ErrReplyBudget, whatever other sessions keep. Default
	// DefaultMaxSessionReplyBytes, and never above MaxReplyBytes.
	MaxSessionReplyBytes int64

	// Store, if not nil, makes the table durable: the server runs each NEW
	// call through Store.Execute, which commits the completion record
	// with the method's effects, and each call without a header through
	// Store.Transact. Stores such as boltstore.Store set it when they build
	// their table; nil means an in-memory table.
	Store Store
}

// TableStats counts what a Table has done since it was made.
type TableStats struct {
	New            uint64 // NEW calls admitted for execution
	Duplicates     uint64 // duplicates answered at once from a completed record
	InFlightWaits  uint64 // duplicates that arrived while the original was running and waited for it
	Stale          uint64 // ErrStale answers
	Opened         uint64 // sessions made by Open
	Closed         uint64 // sessions ended by Close
	Expired        uint64 // sessions dropped for being idle longer than the lease
	Evicted        uint64 // sessions dropped by Open to make room in a full table
	TooMany        uint64 // Opens refused with ErrTooManySessions
	EpochMismatch  uint64 // ErrEpochMismatch answers
	Unknown        uint64 // ErrSessionExpired answers (unknown, expired, evicted or closed session)
	BadHeader      uint64 // malformed headers refused (ErrBadHeader)
	WindowExceeded uint64 // NEW calls refused by the per-session cap (ErrWindowExceeded)
	ReplyBudget    uint64 // NEW calls refused by a reply budget (ErrReplyBudget)
	Aborted        uint64 // NEW tickets given back with Abort
	Restored       uint64 // completed records installed by Restore
	Sessions       int    // live sessions now
	ReplyBytes     int64  // bytes of replies kept now for unacknowledged calls
}

// Table is the server half of at-most-once: it remembers, per client
// session, the outcome of every call the client has not yet acknowledged,
// so that a retried request is answered from the record instead of running
// the method again.
//
// Sessions come from Open only (the server's session handshake), and from
// Restore and RestoreSession when a durable store rebuilds the table. A
// request never creates one: a request of a session the table does not
// hold (never opened, expired, evicted or closed) is refused with
// ErrSessionExpired whatever its Ack says, and nothing runs. So a late
// retry of an executed call cannot be taken for the first call of a new
// session. A session ends when its client closes it (Close), when it has
// been idle for the lease (it expires, lazily, and never while a call of
// its own is running), or when Open evicts it from a full table (never
// while a call of its own is running).
//
// Each request's header (client, seq, ack) goes through Begin in three
// phases. Admit checks the header and the epoch, finds the live session
// (expiring it if it has been idle for the lease), advances its ack and
// refuses seqs below the ack (STALE). Classify then decides, under the
// table's lock:
//
//	NEW       first time this (client, seq) is seen: the caller runs the
//	          method and reports the Outcome with Finish (or gives the
//	          ticket back with Abort if the method never ran);
//	DONE      the call completed earlier: its first Outcome is returned,
//	          application error included, and nothing runs;
//	IN FLIGHT the original is running now: Begin waits for it (or for ctx),
//	          outside the lock, and then answers as for DONE;
//	STALE     seq is below the highest ack the client has sent: the record
//	          is gone and the call is never re-run (ErrStale).
//
// A record moves NEW → running → DONE → freed (when an ack passes its seq);
// a running record an ack passes (its client gave up on the call) is freed
// when its method returns. Abort takes a running record back to nothing, so
// a retry runs as NEW. A NEW call is refused (ErrWindowExceeded,
// ErrReplyBudget) when its session holds too many records at or above its
// ack or the kept replies reach a budget.
// No goroutine is involved: a Table is a plain struct, safe for concurrent
// use.
//
// Each session is in one of four places, and settle (or drop) is the one
// function that moves it:
//
//	onNoList  in the table, a call of its own running: never expires, never evicted
//	onEmpty   in the table, idle, holding no records: on lists[onEmpty]
//	onHolding in the table, idle, holding records: on lists[onHolding]
//	gone      closed, expired or evicted: out of the table and of every list
//
// Both lists are ordered by last activity, least recent at the front, so
// that expiry pops their fronts while they are expired and eviction takes
// the front of the first non-empty one.
type Table struct {
	lease                int64 // nanoseconds
	now                  func() time.Time
	base                 time.Time // times are stored as int64 nanoseconds since base
	mono                 bool      // now is time.Now: nanos reads the monotonic clock only
	epoch                uint64
	maxCalls             int
	maxSessions          int
	maxReplyBytes        int64
	maxSessionReplyBytes int64
	store                Store // nil for an in-memory table

	mu         sync.Mutex // protects the fields below and every session, record and waitList
	sessions   map[ClientID]*serverSession
	lists      [onHolding + 1]sessionList // idle sessions by what they hold; lists[onNoList] is unused
	replyBytes int64                      // bytes of replies kept by live sessions
	lastSweep  int64
	stats      TableStats
	examined   uint64 // sessions looked at to expire or evict (tests read it)
}

// Where a session is (serverSession.list).
const (
	onNoList  uint8 = iota // in the table, a call running
	onEmpty                // in the table, idle, no records
	onHolding              // in the table, idle, holding records
	gone                   // no longer in the table
)

// sessionList is an intrusive doubly-linked list of sessions, through
// their prev and next fields.
type sessionList struct {
	front, back *serverSession
}

func (l *sessionList) pushBack(s *serverSession) {
	s.prev, s.next = l.back, nil
	if l.back != nil {
		l.back.next = s
	} else {
		l.front = s
	}
	l.back = s
}

func (l *sessionList) remove(s *serverSession) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.front = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.back = s.prev
	}
	s.prev, s.next = nil, nil
}

// serverSession is one client's state in the table. It is kept small
// because a server may hold hundreds of thousands of them: the usual single
// outstanding record lives inline. While more are held, they live by value
// in a ring indexed by seq modulo its size (a power of two that grows to
// cover the seqs held, up to ringMax), so a call in a busy session
// allocates nothing; only a seq that falls on a slot held by another seq
// when the ring cannot grow (a client far beyond its window) goes to the
// overflow map.
type serverSession struct {
	ack        uint64                 // highest ack seen; every seq below it is freed
	last       int64                  // nanoseconds (table time) of the last activity
	bytes      int64                  // Outcome.Size of the completed records held
	id         ClientID               // its key in Table.sessions
	prev, next *serverSession         // neighbours in its list (onEmpty, onHolding)
	ring       *[]callRecord          // nil, or the records by seq&(len-1); one is then unused
	more       map[uint64]*callRecord // overflow: records that fit neither one nor ring; nil when empty
	held       int32                  // records held, wherever they are
	running    int32                  // records running: the session is busy
	abandoned  int32                  // records running below ack: calls their client gave up on (see unacked)
	list       uint8                  // where it is: onNoList, onEmpty, onHolding or gone
	one        callRecord             // the inline record; state recEmpty when unused
}

// ringMax bounds a session's ring (records of about 64 bytes each).
const ringMax = 1024

// Record states.
const (
	recEmpty uint8 = iota
	recRunning
	recDone
)

// callRecord is one call's entry. Records move (into a ring, or a bigger
// one), so a ticket names its record by seq; a running record is never
// freed or reused until its ticket is finished or aborted.
type callRecord struct {
	seq   uint64
	reply any       // valid in recDone: the Outcome's Reply
	err   error     // valid in recDone: the Outcome's Err
	wait  *waitList // non-nil while duplicates wait on a running record
	state uint8
	size  uint32 // valid in recDone: the bytes charged for it (Outcome.Size)
}

// outcome returns the Outcome a completed record keeps.
func (rec *callRecord) outcome() Outcome {
	return Outcome{Reply: rec.reply, Err: rec.err, Size: int(rec.size)}
}

// waitList is made when the first duplicate waits on a running record.
// Finish or Abort fills it in and closes ch; waiters read out and err only
// after ch is closed.
type waitList struct {
	ch  chan struct{}
	out Outcome
	err error // non-nil if the original was aborted
}

// Ticket is Begin's answer for an admitted request. If Run reports true the
// holder must run the method and then call Table.Finish (or Table.Abort)
// exactly once; otherwise Cached holds the answer.
type Ticket struct {
	run    bool
	closed bool // Finish or Abort was called; protected by Table.mu
	out    Outcome
	sess   *serverSession
	seq    uint64 // of the record a NEW ticket must finish
}

// Run reports whether the caller must execute the method (a NEW call).
func (tk *Ticket) Run() bool { return tk.run }

// Cached returns the first execution's Outcome for a DONE or IN FLIGHT call.
// For a NEW call it is the zero Outcome.
func (tk *Ticket) Cached() Outcome { return tk.out }

// NewTable returns an empty table. A nil cfg means the defaults.
func NewTable(cfg *TableConfig) *Table {
	var c TableConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	mono := c.Now == nil
	if mono {
		c.Now = time.Now
	}
	if c.Epoch == 0 {
		c.Epoch = NewEpoch()
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = DefaultMaxCalls
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxReplyBytes <= 0 {
		c.MaxReplyBytes = DefaultMaxReplyBytes
	}
	if c.MaxSessionReplyBytes <= 0 {
		c.MaxSessionReplyBytes = DefaultMaxSessionReplyBytes
	}
	c.MaxSessionReplyBytes = min(c.MaxSessionReplyBytes, c.MaxReplyBytes)
	return &Table{
		lease:                int64(c.Lease),
		now:                  c.Now,
		mono:                 mono,
		base:                 c.Now(),
		epoch:                c.Epoch,
		maxCalls:             c.MaxCalls,
		maxSessions:          c.MaxSessions,
		maxReplyBytes:        c.MaxReplyBytes,
		maxSessionReplyBytes: c.MaxSessionReplyBytes,
		store:                c.Store,
		sessions:             make(map[ClientID]*serverSession),
	}
}

// NewEpoch returns a random non-zero server epoch (crypto/rand), as a
// new table draws when TableConfig.Epoch is 0. A durable store draws one
// when it creates its storage, keeps it, and gives it to the table it
// rebuilds at every open (TableConfig.Epoch), so that sessions survive
// restarts.
func NewEpoch() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("semantics: crypto/rand: " + err.Error())
		}
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
}

// Epoch returns the server epoch every header must carry.
func (t *Table) Epoch() uint64 { return t.epoch }

// Lease returns how long an idle session survives. The server tells
// clients at Open, so that a client stops counting on a session it has
// left idle that long.
func (t *Table) Lease() time.Duration { return time.Duration(t.lease) }

// MaxCalls returns how many records one session may hold. The server tells
// clients at Open, so that a client keeps its window within it.
func (t *Table) MaxCalls() int { return t.maxCalls }

// MaxSessions returns how many sessions the table holds at most.
func (t *Table) MaxSessions() int { return t.maxSessions }

// MaxReplyBytes returns the table's budget for kept replies, over all
// sessions.
func (t *Table) MaxReplyBytes() int64 { return t.maxReplyBytes }

// MaxSessionReplyBytes returns the budget for the replies one session
// keeps.
func (t *Table) MaxSessionReplyBytes() int64 { return t.maxSessionReplyBytes }

// Durable reports whether the table's completion records survive restarts
// (it has a Store), as exactly-once calls require.
func (t *Table) Durable() bool { return t.store != nil }

// Store returns the table's durable store, or nil for an in-memory table.
func (t *Table) Store() Store { return t.store }

// nanos is the table's clock: nanoseconds since the table was made. Sub uses
// the monotonic reading when the clock provides one. With the default
// clock it is time.Since, which reads the monotonic clock alone (time.Now
// reads the wall clock too): half the cost, twice per call.
func (t *Table) nanos() int64 {
	if t.mono {
		return int64(time.Since(t.base))
	}
	return int64(t.now().Sub(t.base))
}

// Open creates a session with a fresh random id (NewClientID) and returns
// the id; the session's first request carries Seq 1 and Ack 1. It is the
// only way a request's session comes to exist (besides Restore and
// RestoreSession). On a full table (MaxSessions) Open drops the expired
// sessions, then evicts one that has no call running, preferring sessions
// with no records and, among equals, the least recently active (see
// TableConfig.MaxSessions); an evicted session is unknown from then on, so
// its retries are refused, never re-run. If every session has a call
// running, Open fails with ErrTooManySessions (a rejection: nothing was
// opened). A durable table's Open commits the session to its store before
// it returns (Store.OpenSession).
func (t *Table) Open() (ClientID, error) {
	id := NewClientID()
	for {
		err := t.open(id)
		if errors.Is(err, errIDTaken) {
			id = NewClientID() // 2^-128: never, but cheap to rule out
			continue
		}
		if err != nil {
			return ClientID{}, err
		}
		if t.store != nil {
			// Durable before the client learns of it (see
			// Store.OpenSession).
			if err := t.store.OpenSession(id); err != nil {
				t.Close(id)
				return ClientID{}, err
			}
		}
		return id, nil
	}
}

// errIDTaken is open's answer for an id already in the table.
var errIDTaken = errors.New("semantics: client id taken")

// open creates the session id, making room as Open documents.
func (t *Table) open(id ClientID) error {
	if id.IsZero() {
		return fmt.Errorf("semantics: opening session: %w", ErrBadHeader)
	}
	now := t.nanos()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sessions[id]; ok {
		return errIDTaken
	}
	if len(t.sessions) >= t.maxSessions && !t.makeRoom(now) {
		t.stats.TooMany++
		return fmt.Errorf("semantics: %d sessions, each with a call running: %w", len(t.sessions), ErrTooManySessions)
	}
	s := &serverSession{id: id, ack: 1, list: onNoList}
	t.sessions[id] = s
	t.settle(s, now)
	t.stats.Opened++
	return nil
}

// makeRoom frees one place in a full table: it drops every expired
// session, and if none was, evicts the front of the first non-empty idle
// list: a session with no call running, one holding no records before one
// holding some, the least recently active first. It reports whether a
// place was freed. Apart from the expired sessions, each dropped once, it
// looks at three sessions at most. t.mu must be held.
func (t *Table) makeRoom(now int64) bool {
	if t.sweep(now) {
		return true
	}
	for _, l := range [...]uint8{onEmpty, onHolding} {
		if s := t.lists[l].front; s != nil {
			t.examined++
			t.drop(s)
			t.stats.Evicted++
			return true
		}
	}
	return false
}

// Close ends the session of client id, as when the client closes it.
// Calls of that session still running finish normally and answer their
// waiters, but nothing is kept; every later request of the session is
// refused with ErrSessionExpired. Closing an unknown session does nothing.
func (t *Table) Close(id ClientID) {
	t.mu.Lock()
	if s, ok := t.sessions[id]; ok {
		t.drop(s)
		t.stats.Closed++
	}
	t.mu.Unlock()
}

// settle records activity of s at now and puts it where its state says:
// at the back of its idle list (none while a call of it runs), so that
// each list stays ordered by last activity. A session's last activity is
// never put before that of the session ahead of it (Begin reads the clock
// before it takes the lock, so concurrent requests may arrive out of
// order by the time the lock takes): the lease then counts from a few
// microseconds later, never earlier. A gone session stays gone. Every
// change to a session's running calls, records or activity ends with
// settle. t.mu must be held.
func (t *Table) settle(s *serverSession, now int64) {
	to := onNoList
	switch {
	case s.list == gone:
		return
	case s.running > 0:
	case s.held == 0:
		to = onEmpty
	default:
		to = onHolding
	}
	if to == s.list && s.next == nil {
		// Busy, or already last in its list (a client calling again):
		// only the time moves.
		if s.prev != nil && s.prev.last > now {
			now = s.prev.last
		}
		s.last = now
		return
	}
	if s.list != onNoList {
		t.lists[s.list].remove(s)
	}
	s.list, s.last = to, now
	if to == onNoList {
		return
	}
	l := &t.lists[to]
	if l.back != nil && l.back.last > now {
		s.last = l.back.last
	}
	l.pushBack(s)
}

// drop takes s out of the table (closed, expired or evicted) and frees the
// bytes of its kept replies; its running calls finish, but keep nothing.
// t.mu must be held.
func (t *Table) drop(s *serverSession) {
	if s.list == gone {
		return
	}
	if s.list != onNoList {
		t.lists[s.list].remove(s)
	}
	s.list = gone
	delete(t.sessions, s.id)
	t.replyBytes -= s.bytes
	s.bytes = 0
}

// Begin admits one request carrying h; see the Table comment for the state
// machine. The error, if any, means the method must not run for this
// request: ErrBadHeader, ErrEpochMismatch, ErrSessionExpired, ErrStale,
// ErrWindowExceeded or ErrReplyBudget (each found with errors.Is), an error wrapping
// ctx.Err() if ctx ended while waiting for an in-flight original, or an
// error wrapping Abort's error if the original was aborted meanwhile.
func (t *Table) Begin(ctx context.Context, h Header) (*Ticket, error) {
	now := t.nanos()
	tk := new(Ticket) // allocated before the lock is taken
	var w *waitList
	t.mu.Lock()
	s, err := t.admit(h, now)
	if err == nil {
		w, err = t.classify(s, h, tk)
	}
	if s != nil {
		t.settle(s, now)
	}
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if w != nil {
		return t.wait(ctx, h, w, tk)
	}
	return tk, nil
}

// admit is Begin's first phase: it checks h and its epoch, sweeps idle
// sessions when a sweep is due, finds h's live session (expiring it if it
// has been idle for the lease), advances its ack to h.Ack and refuses a
// seq below the ack. A session that is not in the table is refused
// whatever h.Ack says. It returns the live session, if it found one, even
// with an error: Begin renews it (settle). t.mu must be held.
func (t *Table) admit(h Header, now int64) (*serverSession, error) {
	if !h.Valid() {
		t.stats.BadHeader++
		return nil, fmt.Errorf("semantics: %v: %w", h, ErrBadHeader)
	}
	if h.Epoch != t.epoch {
		t.stats.EpochMismatch++
		return nil, fmt.Errorf("semantics: header epoch %x, server epoch %x: %w", h.Epoch, t.epoch, ErrEpochMismatch)
	}
	if now-t.lastSweep >= t.lease/4 {
		t.sweep(now)
	}
	s := t.sessions[h.Client]
	if s != nil && t.idle(s, now) {
		t.drop(s)
		t.stats.Expired++
		s = nil
	}
	if s == nil {
		t.stats.Unknown++
		return nil, fmt.Errorf("semantics: client %v (seq %d, ack %d): %w", h.Client, h.Seq, h.Ack, ErrSessionExpired)
	}
	t.replyBytes -= s.advance(h.Ack)
	if h.Seq < s.ack {
		t.stats.Stale++
		return s, fmt.Errorf("semantics: client %v seq %d < ack %d: %w", h.Client, h.Seq, s.ack, ErrStale)
	}
	return s, nil
}

// classify is Begin's second phase, for a request admitted on session s:
// NEW (a running record is made and tk told to run), DONE (tk gets the
// recorded outcome) or IN FLIGHT (the waitList to wait on is returned).
// t.mu must be held.
func (t *Table) classify(s *serverSession, h Header, tk *Ticket) (*waitList, error) {
	rec := s.lookup(h.Seq)
	switch {
	case rec == nil:
		if n := s.unacked(); n >= t.maxCalls {
			t.stats.WindowExceeded++
			running := int(s.running - s.abandoned)
			return nil, fmt.Errorf("semantics: client %v seq %d not run: %w (%d held: %d running, %d completed awaiting acknowledgement; MaxCalls %d)",
				h.Client, h.Seq, ErrWindowExceeded, n, running, n-running, t.maxCalls)
		}
		if err := t.checkBudget(s, h); err != nil {
			return nil, err
		}
		rec = s.insert(h.Seq)
		rec.state = recRunning
		s.running++
		t.stats.New++
		tk.run, tk.sess, tk.seq = true, s, h.Seq
		return nil, nil
	case rec.state == recDone:
		t.stats.Duplicates++
		tk.out = rec.outcome()
		return nil, nil
	}
	if rec.wait == nil {
		rec.wait = &waitList{ch: make(chan struct{})}
	}
	t.stats.InFlightWaits++
	return rec.wait, nil
}

// checkBudget refuses a NEW call of s while s, or the whole table, keeps
// replies up to its budget. Only the bytes already kept count: a call
// admitted under the budget may take it over by its own reply. t.mu must
// be held.
func (t *Table) checkBudget(s *serverSession, h Header) error {
	switch {
	case s.bytes >= t.maxSessionReplyBytes:
		t.stats.ReplyBudget++
		return fmt.Errorf("semantics: client %v seq %d not run: the session keeps %d bytes of unacknowledged replies (MaxSessionReplyBytes %d): %w",
			h.Client, h.Seq, s.bytes, t.maxSessionReplyBytes, ErrReplyBudget)
	case t.replyBytes >= t.maxReplyBytes:
		t.stats.ReplyBudget++
		return fmt.Errorf("semantics: client %v seq %d not run: the server keeps %d bytes of unacknowledged replies (MaxReplyBytes %d): %w",
			h.Client, h.Seq, t.replyBytes, t.maxReplyBytes, ErrReplyBudget)
	}
	return nil
}

// wait is Begin's last phase for an IN FLIGHT request: it waits, without
// the lock, for the original to finish (then tk gets its outcome), to be
// aborted, or for ctx to end.
func (t *Table) wait(ctx context.Context, h Header, w *waitList, tk *Ticket) (*Ticket, error) {
	select {
	case <-w.ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("semantics: waiting for in-flight client %v seq %d: %w", h.Client, h.Seq, ctx.Err())
	}
	if w.err != nil {
		return nil, fmt.Errorf("semantics: in-flight client %v seq %d aborted: %w", h.Client, h.Seq, w.err)
	}
	tk.out = w.out
	return tk, nil
}

// Finish records the Outcome of a NEW ticket's execution and answers any
// duplicates waiting for it. Later duplicates get out until the client
// acknowledges the call; until then out.Size counts against the reply
// budgets. A call whose session is gone (closed, expired, evicted) or
// which its client acknowledged while it ran keeps nothing. Finish on a
// ticket that is not NEW, or a second Finish or Abort, does nothing.
func (t *Table) Finish(tk *Ticket, out Outcome) {
	if tk == nil || !tk.run {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.closed {
		return
	}
	tk.closed = true
	s := tk.sess
	rec := s.lookup(tk.seq) // running: still there
	s.running--
	if w := rec.wait; w != nil {
		w.out = out
		close(w.ch)
		rec.wait = nil
	}
	if rec.seq < s.ack || s.list == gone {
		// Acknowledged while it ran (the client gave up on it), or its
		// session ended: nobody may ask for it again, so keep nothing.
		s.removeRunning(rec.seq)
	} else {
		size := chargeOf(out.Size)
		rec.reply, rec.err, rec.size, rec.state = out.Reply, out.Err, size, recDone
		s.bytes += int64(size)
		t.replyBytes += int64(size)
	}
	t.settle(s, t.nanos())
}

// chargeOf is the charge for a reply of size bytes, as a record keeps it.
func chargeOf(size int) uint32 {
	return uint32(min(max(int64(size), 0), math.MaxUint32))
}

// Abort gives back a NEW ticket whose method never ran (for example, its
// arguments could not be decoded). Duplicates waiting for it are released
// with an error wrapping err, and a later retry of the same seq runs as NEW.
// Abort on a ticket that is not NEW, or after Finish or Abort, does nothing.
func (t *Table) Abort(tk *Ticket, err error) {
	if tk == nil || !tk.run {
		return
	}
	if err == nil {
		err = errAborted
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.closed {
		return
	}
	tk.closed = true
	t.stats.Aborted++
	s := tk.sess
	rec := s.lookup(tk.seq) // running: still there
	s.running--
	if w := rec.wait; w != nil {
		w.err = err
		close(w.ch)
		rec.wait = nil
	}
	s.removeRunning(rec.seq)
	t.settle(s, t.nanos())
}

// Restore installs a completed record, as when a server rebuilds its table
// from durable completion records after a restart. The session is created
// if needed, whatever h.Ack says (with Open and RestoreSession, the only
// ways a session comes to exist), and its ack advanced to h.Ack. h.Epoch is
// not checked: the table's own epoch (set in TableConfig) is the one that
// counts. A malformed header, a seq already acknowledged, or a seq the table
// already holds is ignored. Restore is not limited by MaxCalls,
// MaxSessions or the reply budgets, but the record's bytes count against
// the budgets: out.Size, or for a *StoredReply without one the length of
// its data.
func (t *Table) Restore(h Header, out Outcome) {
	if !h.Valid() {
		return
	}
	now := t.nanos()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.restored(h.Client)
	defer t.settle(s, now)
	t.replyBytes -= s.advance(h.Ack)
	if h.Seq < s.ack || s.lookup(h.Seq) != nil {
		return
	}
	if sr, ok := out.Reply.(*StoredReply); ok && out.Size <= 0 {
		out.Size = len(sr.Data) + len(sr.Method)
	}
	size := chargeOf(out.Size)
	rec := s.insert(h.Seq)
	rec.reply, rec.err, rec.size, rec.state = out.Reply, out.Err, size, recDone
	s.bytes += int64(size)
	t.replyBytes += int64(size)
	t.stats.Restored++
}

// restored returns the session id, creating it for Restore or
// RestoreSession if the table does not hold it. t.mu must be held.
func (t *Table) restored(id ClientID) *serverSession {
	s := t.sessions[id]
	if s == nil {
		s = &serverSession{id: id, ack: 1, list: onNoList}
		t.sessions[id] = s
	}
	return s
}

// RestoreSession installs a session whose calls below ack have all been
// acknowledged, as when a server rebuilds its table from durable records
// after a restart: a durable session may hold no record, yet its client's
// next header carries an ack past 1 and must not be taken for an expired
// session. An existing session's ack is advanced to ack. ack 0 is taken
// as 1; a zero id is ignored. RestoreSession is not limited by
// MaxSessions.
func (t *Table) RestoreSession(id ClientID, ack uint64) {
	if id.IsZero() {
		return
	}
	now := t.nanos()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.restored(id)
	t.replyBytes -= s.advance(ack)
	t.settle(s, now)
}

// Stats returns the table's counters.
func (t *Table) Stats() TableStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	st.Sessions = len(t.sessions)
	st.ReplyBytes = t.replyBytes
	return st
}

// Len returns the number of live sessions (expired ones not yet swept
// included).
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// idle reports whether s has outlived the lease at time now. A session with
// a running call is never idle. t.mu must be held.
func (t *Table) idle(s *serverSession, now int64) bool {
	return now-s.last >= t.lease && !s.busy()
}

// sweep drops every expired session, popping the fronts of the idle lists
// (sessions with a call running are on none, and never expire): it looks
// at each expired session once and at two more. It reports whether it
// dropped any. Begin calls it at most once per quarter lease. t.mu must be
// held.
func (t *Table) sweep(now int64) bool {
	t.lastSweep = now
	dropped := false
	for _, l := range [...]uint8{onEmpty, onHolding} {
		for {
			s := t.lists[l].front
			if s == nil {
				break
			}
			t.examined++
			if now-s.last < t.lease {
				break
			}
			t.drop(s)
			t.stats.Expired++
			dropped = true
		}
	}
	return dropped
}

// advance raises the session's ack to ack and frees the completed records
// below it, returning the bytes they were charged (taken off s.bytes; the
// caller takes them off the table's). Running records below it are freed
// by Finish.
func (s *serverSession) advance(ack uint64) (freed int64) {
	if ack <= s.ack {
		return 0
	}
	from := s.ack
	s.ack = ack
	if s.held == 0 {
		return 0
	}
	free := func(rec *callRecord) {
		switch {
		case rec.state == recDone && rec.seq < ack:
			freed += int64(rec.size)
			*rec = callRecord{}
			s.held--
		case rec.state == recRunning && rec.seq >= from && rec.seq < ack:
			s.abandoned++ // freed by Finish or Abort
		}
	}
	free(&s.one)
	if s.ring != nil {
		// Every record below the old ack is freed or running, so only the
		// seqs between the two acks need a look, unless they wrap the ring.
		if n := uint64(len(s.recs())); ack-from < n {
			for seq := from; seq < ack; seq++ {
				if rec := &s.recs()[seq&(n-1)]; rec.seq == seq {
					free(rec)
				}
			}
		} else {
			for i := range s.recs() {
				free(&s.recs()[i])
			}
		}
	}
	for seq, rec := range s.more {
		switch {
		case rec.state == recDone && seq < ack:
			freed += int64(rec.size)
			delete(s.more, seq)
			s.held--
		case rec.state == recRunning && seq >= from && seq < ack:
			s.abandoned++
		}
	}
	if len(s.more) == 0 {
		s.more = nil
	}
	s.shrink()
	s.bytes -= freed
	return freed
}

// lookup returns the record of seq, or nil.
func (s *serverSession) lookup(seq uint64) *callRecord {
	if s.held == 0 {
		return nil
	}
	if s.one.state != recEmpty && s.one.seq == seq {
		return &s.one
	}
	if n := uint64(len(s.recs())); n > 0 {
		if rec := &s.recs()[seq&(n-1)]; rec.state != recEmpty && rec.seq == seq {
			return rec
		}
	}
	return s.more[seq] // nil map reads are fine
}

// insert makes an empty record for seq, which must not be present. The
// pointer is valid until the session's next insert or remove.
func (s *serverSession) insert(seq uint64) *callRecord {
	s.held++
	if s.held == 1 && s.ring == nil {
		s.one = callRecord{seq: seq}
		return &s.one
	}
	if s.ring == nil || s.recs()[seq&uint64(len(s.recs())-1)].state != recEmpty {
		s.grow(seq)
	}
	if n := uint64(len(s.recs())); n > 0 {
		if rec := &s.recs()[seq&(n-1)]; rec.state == recEmpty {
			*rec = callRecord{seq: seq}
			return rec
		}
	}
	if s.more == nil {
		s.more = make(map[uint64]*callRecord)
	}
	rec := &callRecord{seq: seq}
	s.more[seq] = rec
	return rec
}

// grow makes the ring big enough for every record in one and the ring and
// for seq, if ringMax allows; records that do not fit stay where they are.
func (s *serverSession) grow(seq uint64) {
	lo, hi := seq, seq
	span := func(rec *callRecord) {
		if rec.state != recEmpty {
			lo, hi = min(lo, rec.seq), max(hi, rec.seq)
		}
	}
	span(&s.one)
	for i := range s.recs() {
		span(&s.recs()[i])
	}
	size := max(8, len(s.recs()))
	for uint64(size) <= hi-lo && size < ringMax {
		size *= 2
	}
	if uint64(size) <= hi-lo && s.ring != nil {
		return // cannot cover the span: seq goes to the overflow map
	}
	// A new ring, or a first one (which takes what fits if it cannot
	// cover the span).
	ring := make([]callRecord, size)
	put := func(rec *callRecord) {
		if rec.state != recEmpty && ring[rec.seq&uint64(size-1)].state == recEmpty {
			ring[rec.seq&uint64(size-1)] = *rec
			*rec = callRecord{}
		}
	}
	put(&s.one)
	for i := range s.recs() {
		put(&s.recs()[i])
	}
	// What did not fit (a ring that could not cover the span) overflows.
	for i := range s.recs() {
		if rec := s.recs()[i]; rec.state != recEmpty {
			if s.more == nil {
				s.more = make(map[uint64]*callRecord)
			}
			s.more[rec.seq] = &rec
		}
	}
	if s.one.state != recEmpty {
		if s.more == nil {
			s.more = make(map[uint64]*callRecord)
		}
		one := s.one
		s.more[one.seq] = &one
		s.one = callRecord{}
	}
	s.ring = &ring
}

// removeRunning frees the record of seq, a running record of s (or of s
// before it was closed, expired or evicted), which is charged nothing.
func (s *serverSession) removeRunning(seq uint64) {
	rec := s.lookup(seq)
	if rec == nil {
		return
	}
	if seq < s.ack {
		s.abandoned--
	}
	if s.more[seq] == rec {
		delete(s.more, seq)
		if len(s.more) == 0 {
			s.more = nil
		}
	} else {
		*rec = callRecord{}
	}
	s.held--
	s.shrink()
}

// shrink drops the ring once it holds nothing, so that an idle session
// stays small.
func (s *serverSession) shrink() {
	if s.ring == nil || int(s.held) > len(s.more) {
		return
	}
	if s.one.state == recEmpty && int(s.held) == len(s.more) {
		s.ring = nil
	}
}

// recs returns the ring's records, nil when there is no ring.
func (s *serverSession) recs() []callRecord {
	if s.ring == nil {
		return nil
	}
	return *s.ring
}

// count returns how many records s holds.
func (s *serverSession) count() int { return int(s.held) }

// unacked returns how many of s's records are at or above its ack: the
// calls its client has not finished, which MaxCalls caps. A client ends a
// call whose caller gave up, freeing its window slot and moving its ack
// past it, while the method may still run here: that record is held until
// the method returns (a duplicate of it is refused as stale meanwhile) but
// is no longer the client's, so it does not count, and the client's count
// (at most its window) and the server's agree.
func (s *serverSession) unacked() int { return int(s.held - s.abandoned) }

// busy reports whether one of s's calls is running.
func (s *serverSession) busy() bool { return s.running > 0 }
