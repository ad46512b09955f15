package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/semrpc/semrpc/semantics"
)

// TxOf returns the transaction that ctx runs in, or nil: the methods of a
// server whose store is a Store read and write the service's tables
// through it, so that their writes commit with the call's completion
// record, or are rolled back if they return an error. It is
// semantics.TxOf[pgx.Tx]. The transaction may be shared with other calls
// and belongs to the store: a method must not Commit or Rollback it (it
// may nest its own savepoints with Begin), must not keep it beyond its
// return, and should run its statements with its own ctx only if a
// cancelled ctx may cost the whole group its transaction (pgx closes a
// connection whose query is cancelled; the calls sharing it are then
// refused, not run, and retried).
func TxOf(ctx context.Context) pgx.Tx {
	tx, _ := semantics.TxOf[pgx.Tx](ctx)
	return tx
}

// Defaults.
const (
	// DefaultMaxConns is the size of the store's connection pool.
	DefaultMaxConns = 8

	// DefaultMaxTx is how many transactions of calls a store runs at
	// once; calls that arrive while they all run share the next ones
	// (group commit).
	DefaultMaxTx = 4

	// DefaultConnectTimeout bounds each connection attempt, so that a
	// store whose database is unreachable refuses calls instead of
	// hanging them.
	DefaultConnectTimeout = 5 * time.Second
)

// storeFormat is the layout of the tables below; a database holding
// another is refused.
const storeFormat = 1

// The store's tables. Everything else in the database belongs to the
// service.
const schema = `
CREATE TABLE IF NOT EXISTS semrpc_meta (
	id     int PRIMARY KEY CHECK (id = 1),
	format int NOT NULL,
	epoch  bigint NOT NULL,
	domain text NOT NULL
);
CREATE TABLE IF NOT EXISTS semrpc_sessions (
	client      bytea PRIMARY KEY,
	ack         bigint NOT NULL,
	last_active timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS semrpc_records (
	client bytea NOT NULL,
	seq    bigint NOT NULL,
	method text NOT NULL,
	done   boolean NOT NULL DEFAULT false,
	failed boolean NOT NULL DEFAULT false,
	errtext text NOT NULL DEFAULT '',
	reply  bytea,
	PRIMARY KEY (client, seq)
);`

// setupLock is the advisory lock that serialises the setup of servers
// opening one database at the same time.
const setupLock = 0x73656d727063 // "semrpc"

// Config configures a Store. A nil *Config means the defaults.
type Config struct {
	// Table configures the table the store builds; its Epoch and Store
	// fields are ignored (the epoch is the database's). Its Lease is also
	// the sessions' lease in the database: a session no server has used
	// for that long is not taken over, and its records are deleted after
	// twice that.
	Table semantics.TableConfig

	// MaxConns is the size of the connection pool. Default
	// DefaultMaxConns.
	MaxConns int32

	// MaxTx is how many transactions of calls run at once. Default
	// DefaultMaxTx, at most MaxConns-1.
	MaxTx int

	// NoBatch runs each call in a transaction of its own instead of
	// gathering concurrent calls into shared ones. For measurements.
	NoBatch bool
}

// Store is a semantics.Store on PostgreSQL, and a semantics.DomainStore:
// every server whose store is on one database sees the sessions and the
// completion records of the others.
//
// Each call runs in a transaction that the method reaches with TxOf: the
// call's completion record is inserted at the start of it (a duplicate of
// a call still running, on this server or another, waits on that row's
// lock until the first commits, and then reads its record), the method
// runs in a savepoint, and the record is completed in the same
// transaction, which commits before the reply is sent. A method that
// returns an error has its writes rolled back to the savepoint; its
// record, with the error, commits. Calls that arrive together share
// transactions and commits (group commit).
//
// The table starts empty: sessions are taken over from the database when
// their first request arrives (semantics.SessionFinder), and a call the
// table does not know is looked up in the records when it runs.
type Store struct {
	pool    *pgxpool.Pool
	table   *semantics.Table
	epoch   uint64
	domain  string
	lease   time.Duration
	touch   time.Duration // how old a session's last_active may get before a call renews it
	keep    time.Duration // how long an idle session's records are kept
	noBatch bool
	maxTx   int
	closed  atomic.Bool

	cmu     sync.Mutex    // protects queue and leaders
	queue   []*commitCall // calls waiting for a transaction
	leaders int           // callers running transactions for the queue

	sweepMu   sync.Mutex // protects lastSweep
	lastSweep time.Time

	txs atomic.Uint64 // transactions begun (tests read it)
}

var (
	_ semantics.DomainStore   = (*Store)(nil)
	_ semantics.SessionFinder = (*Store)(nil)
)

// Open connects to the database of connString (a PostgreSQL URL or
// key=value string, as pgx takes it), creates the store's tables if they
// are missing, and returns the store. The first server to open a database
// draws its epoch and domain; every later one, here or on another
// machine, reads them, so all of them form one exactly-once domain. ctx
// bounds the connection and the setup.
func Open(ctx context.Context, connString string, cfg *Config) (*Store, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Table.Lease <= 0 {
		c.Table.Lease = semantics.DefaultLease
	}
	if c.MaxConns <= 1 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxTx <= 0 {
		c.MaxTx = DefaultMaxTx
	}
	c.MaxTx = min(c.MaxTx, int(c.MaxConns)-1)
	pcfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	pcfg.MaxConns = c.MaxConns
	if pcfg.ConnConfig.ConnectTimeout <= 0 {
		pcfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{
		pool:    pool,
		lease:   c.Table.Lease,
		touch:   c.Table.Lease / 4,
		keep:    2 * c.Table.Lease,
		noBatch: c.NoBatch,
		maxTx:   c.MaxTx,
	}
	if err := s.setup(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	tc := c.Table
	tc.Epoch, tc.Store = s.epoch, s
	s.table = semantics.NewTable(&tc)
	s.lastSweep = time.Now()
	return s, nil
}

// setup creates the tables and reads (or, in a new database, draws) the
// epoch and the domain.
func (s *Store) setup(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(setupLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, schema); err != nil {
		return fmt.Errorf("creating the store's tables: %w", err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO semrpc_meta (id, format, epoch, domain) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
		storeFormat, int64(semantics.NewEpoch()), "pg:"+hex.EncodeToString(id[:]))
	if err != nil {
		return err
	}
	var (
		format int
		epoch  int64
	)
	if err := tx.QueryRow(ctx, "SELECT format, epoch, domain FROM semrpc_meta WHERE id = 1").Scan(&format, &epoch, &s.domain); err != nil {
		return err
	}
	if format != storeFormat {
		return fmt.Errorf("unknown store format %d", format)
	}
	if epoch == 0 || s.domain == "" {
		return fmt.Errorf("bad epoch %x or domain %q", epoch, s.domain)
	}
	s.epoch = uint64(epoch)
	return tx.Commit(ctx)
}

// Table returns the store's table.
func (s *Store) Table() *semantics.Table { return s.table }

// Epoch returns the store's server epoch: the database's, the same for
// every server on it and across restarts.
func (s *Store) Epoch() uint64 { return s.epoch }

// Domain implements semantics.DomainStore: it names the database's store,
// the same for every server on it.
func (s *Store) Domain() string { return s.domain }

// Pool returns the connection pool, for setup before the server serves
// (creating the service's tables) and for reading after it stopped.
// Methods use TxOf(ctx) instead: what they write through the pool is not
// in their call's transaction. Servers that start together and create
// their tables with CREATE TABLE IF NOT EXISTS must do it under an advisory
// lock of their own (SELECT pg_advisory_xact_lock(n) first, in the same
// transaction): PostgreSQL's IF NOT EXISTS is not safe against itself, and
// all but one would fail with "already exists".
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the connection pool, after the transactions running have
// ended. Calls after Close are refused, not run.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}

// FindSession implements semantics.SessionFinder: it reports whether the
// database holds the session id with a last activity, committed by any
// server, within the lease.
func (s *Store) FindSession(ctx context.Context, id semantics.ClientID) (uint64, bool, error) {
	if s.closed.Load() {
		return 0, false, errors.New("pgstore: store closed")
	}
	var ack int64
	err := s.pool.QueryRow(ctx, "SELECT ack FROM semrpc_sessions WHERE client = $1 AND last_active > now() - $2 * interval '1 microsecond'",
		clientKey(id), s.lease.Microseconds()).Scan(&ack)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return uint64(ack), true, nil
}

// OpenSession implements semantics.Store: it inserts the session with ack
// 1, sharing a transaction with concurrent calls.
func (s *Store) OpenSession(id semantics.ClientID) error {
	what := "opening session " + id.String()
	var own error
	err := s.commit(func(ctx context.Context, tx pgx.Tx, _ *txState) error {
		_, own = tx.Exec(ctx, "INSERT INTO semrpc_sessions (client, ack, last_active) VALUES ($1, 1, now()) ON CONFLICT (client) DO NOTHING", clientKey(id))
		return own
	})
	if err == nil {
		err = own
	}
	if err != nil {
		// Nothing ran; the session is never used.
		return fmt.Errorf("pgstore: %s: %w: %v", what, semantics.ErrRejected, err)
	}
	return nil
}

// Statements of a call's admission, sent in one round trip.
const (
	stmtInsertSession = "INSERT INTO semrpc_sessions (client, ack, last_active) VALUES ($1, $2, now()) ON CONFLICT (client) DO NOTHING"
	// stmtAdvance raises the session's ack (renewing its last activity
	// when it is older than a quarter lease) and deletes the records
	// between the old ack and the new: only those, so that the scan never
	// walks the dead entries of records deleted before.
	stmtAdvance = `WITH old AS (SELECT ack FROM semrpc_sessions WHERE client = $1),
	touched AS (UPDATE semrpc_sessions SET ack = GREATEST(ack, $2), last_active = now()
		WHERE client = $1 AND (ack < $2 OR last_active < now() - $3 * interval '1 microsecond'))
	DELETE FROM semrpc_records WHERE client = $1 AND seq >= (SELECT ack FROM old) AND seq < $2`
	stmtSessionAck   = "SELECT ack FROM semrpc_sessions WHERE client = $1"
	stmtInsertRecord = "INSERT INTO semrpc_records (client, seq, method) VALUES ($1, $2, $3) ON CONFLICT (client, seq) DO NOTHING"
	stmtSelectRecord = "SELECT done, method, failed, errtext, reply FROM semrpc_records WHERE client = $1 AND seq = $2"
	stmtFinishRecord = "UPDATE semrpc_records SET done = true, failed = $3, errtext = $4, reply = $5 WHERE client = $1 AND seq = $2"
)

// callResult is what one call's part of a shared transaction did.
type callResult struct {
	out      semantics.Outcome
	ran      bool  // the method's writes are in the transaction
	answered bool  // a record was found; only the session was written
	own      error // the call's own verdict (nothing of it is in the transaction)
	panicked any   // the method panicked with this
}

// Execute implements semantics.Store. The call's record is inserted first:
// if another transaction (on this server or another of the domain) holds
// it, the insert waits for that transaction to end, and the record it
// committed is the answer (fn not run). A commit that fails is
// may-have-executed; unlike a file store, the database itself is then the
// judge: the call's retry reads its record if the commit happened, and the
// store keeps serving.
func (s *Store) Execute(ctx context.Context, h semantics.Header, method string, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	what := callName(h)
	if h.Seq > math.MaxInt64 || h.Ack > math.MaxInt64 {
		return semantics.Outcome{}, fmt.Errorf("pgstore: %s not run: seq or ack beyond 2^63: %w", what, semantics.ErrRejected)
	}
	var r callResult
	err := s.commit(func(tctx context.Context, tx pgx.Tx, ts *txState) error {
		r = callResult{}
		return s.runCall(ctx, tctx, tx, ts, h, method, fn, &r)
	})
	if r.panicked != nil {
		panic(r.panicked)
	}
	switch {
	case r.own != nil:
		return semantics.Outcome{}, r.own
	case err == nil, r.answered:
		// An answer read from a committed record holds even if the
		// transaction (which only renewed the session) failed.
		return r.out, nil
	case r.ran && isCommitUnknown(err):
		return semantics.Outcome{}, semantics.MaybeExecuted(fmt.Errorf("pgstore: committing %s: %w", what, err))
	}
	return semantics.Outcome{}, notRun(what, err)
}

// runCall is one call's part of a shared transaction: admission, the
// method in a savepoint, the record. Its error means the transaction is
// unusable (every call in it is refused); a verdict of the call's own is
// left in r.own, with the transaction rolled back to before the call.
func (s *Store) runCall(callCtx, ctx context.Context, tx pgx.Tx, ts *txState, h semantics.Header, method string, fn func(ctx context.Context) (any, error), r *callResult) error {
	key := clientKey(h.Client)
	seq, ack := int64(h.Seq), int64(h.Ack)
	b := &pgx.Batch{}
	b.Queue("SAVEPOINT semrpc_call")
	b.Queue(stmtInsertSession, key, ack)
	b.Queue(stmtAdvance, key, ack, s.touch.Microseconds())
	var durableAck int64
	b.Queue(stmtSessionAck, key).QueryRow(func(row pgx.Row) error { return row.Scan(&durableAck) })
	var inserted bool
	b.Queue(stmtInsertRecord, key, seq, method).Exec(func(ct pgconn.CommandTag) error {
		inserted = ct.RowsAffected() == 1
		return nil
	})
	var (
		done, failed bool
		recMethod    string
		errText      string
		reply        []byte
	)
	b.Queue(stmtSelectRecord, key, seq).QueryRow(func(row pgx.Row) error {
		return row.Scan(&done, &recMethod, &failed, &errText, &reply)
	})
	b.Queue("SAVEPOINT semrpc_method")
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return s.abandonCall(ctx, tx, r, notRun(callName(h), err))
	}
	switch {
	case h.Seq < uint64(durableAck):
		err := fmt.Errorf("pgstore: client %v seq %d < durable ack %d: %w", h.Client, h.Seq, durableAck, semantics.ErrStale)
		return s.abandonCall(ctx, tx, r, err)
	case !inserted && done:
		r.out, r.answered = storedOutcome(recMethod, failed, errText, reply), true
		_, err := tx.Exec(ctx, "RELEASE SAVEPOINT semrpc_call")
		return err
	case !inserted:
		// Not expected: a record is completed in the transaction that
		// inserts it.
		return s.abandonCall(ctx, tx, r, notRun(callName(h), errors.New("an incomplete completion record")))
	}

	r.ran = true
	reply2, p, appErr := callMethod(semantics.ContextWithTx(callCtx, tx), fn)
	if p != nil {
		r.ran, r.panicked = false, p
		return s.abandonCall(ctx, tx, r, notRun(callName(h), fmt.Errorf("panic: %v", p)))
	}
	if errors.Is(appErr, semantics.ErrMaybeExecuted) {
		// No answer (the server stopped the method): nothing recorded.
		r.ran = false
		return s.abandonCall(ctx, tx, r, appErr)
	}
	data, err := semantics.EncodeReply(method, reply2)
	if err != nil {
		r.ran = false
		return s.abandonCall(ctx, tx, r, notRun(callName(h), err))
	}
	errText = ""
	if appErr != nil {
		// Its own round trip: a batch is prepared before it runs, which
		// a transaction that the method's failed statement aborted
		// refuses.
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT semrpc_method"); err != nil {
			r.ran = false
			return s.abandonCall(ctx, tx, r, notRun(callName(h), err))
		}
		errText = appErr.Error()
	}
	b = &pgx.Batch{}
	b.Queue(stmtFinishRecord, key, seq, appErr != nil, errText, data)
	b.Queue("RELEASE SAVEPOINT semrpc_call")
	r.out = semantics.Outcome{Reply: reply2, Err: appErr}
	if ts.last {
		// The transaction's last call commits it in the same round trip.
		err := ts.commitWith(ctx, tx, b)
		var be *beforeCommitError
		if errors.As(err, &be) {
			// Its own statements failed (COMMIT never ran, the
			// transaction is still open): this call alone is rolled back,
			// and the transaction commits the others.
			r.ran, r.out = false, semantics.Outcome{}
			return s.abandonCall(ctx, tx, r, notRun(callName(h), be.err))
		}
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		// The method's own statements may have failed the transaction
		// (it returned nil all the same): roll it all back.
		r.ran, r.out = false, semantics.Outcome{}
		return s.abandonCall(ctx, tx, r, notRun(callName(h), err))
	}
	return nil
}

// txState is what the calls of one transaction share.
type txState struct {
	last      bool // the call running is the transaction's last
	committed bool // the last call committed the transaction
}

// commitWith sends b and COMMIT in one round trip. PostgreSQL runs them in
// order and stops at the first error, so the statement that failed tells
// the transaction's fate: an error answered to a statement before COMMIT
// (the connection ending included) means COMMIT never ran, and the whole
// transaction is rolled back, nothing committed; an ERROR answered to
// COMMIT means it did not commit; anything else (no answer, or the
// connection ending at COMMIT) leaves the fate unknown: a commitError.
func (ts *txState) commitWith(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	before := len(b.QueuedQueries)
	answered := 0 // statements before COMMIT that succeeded
	for _, q := range b.QueuedQueries {
		q.Exec(func(pgconn.CommandTag) error {
			answered++
			return nil
		})
	}
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
		if ct.String() != "COMMIT" {
			return errors.New("the transaction was rolled back at commit")
		}
		return nil
	})
	err := tx.SendBatch(ctx, b).Close()
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		ts.committed = true
		return nil
	case errors.As(err, &pgErr) && answered < before && pgErr.Severity == "ERROR":
		return &beforeCommitError{err} // COMMIT skipped; the transaction is open
	case errors.As(err, &pgErr) && (answered < before || pgErr.Severity == "ERROR"):
		return err // nothing committed; the caller rolls back
	}
	return &commitError{err}
}

// beforeCommitError is commitWith's error when a statement before COMMIT
// failed with an ERROR: PostgreSQL skipped the rest, COMMIT included, and
// the transaction is still open (aborted, up to its last savepoint).
type beforeCommitError struct{ err error }

func (e *beforeCommitError) Error() string { return e.err.Error() }
func (e *beforeCommitError) Unwrap() error { return e.err }

// abandonCall rolls the transaction back to before the call and leaves
// verdict as the call's own. An error means the transaction is unusable.
func (s *Store) abandonCall(ctx context.Context, tx pgx.Tx, r *callResult, verdict error) error {
	r.own = verdict
	// Exec without arguments uses the simple protocol: nothing to
	// prepare, which an aborted transaction would refuse.
	_, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT semrpc_call; RELEASE SAVEPOINT semrpc_call")
	return err
}

// callMethod runs fn, catching a panic (re-raised on the caller's
// goroutine).
func callMethod(ctx context.Context, fn func(ctx context.Context) (any, error)) (reply, panicked any, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked = v
		}
	}()
	reply, err = fn(ctx)
	return reply, nil, err
}

// Transact implements semantics.Store: fn runs in a savepoint of a shared
// transaction; an application error rolls back to it.
func (s *Store) Transact(ctx context.Context, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	const what = "call without a header"
	var (
		out      semantics.Outcome
		ran      bool
		own      error
		panicked any
	)
	err := s.commit(func(tctx context.Context, tx pgx.Tx, _ *txState) error {
		out, ran, own, panicked = semantics.Outcome{}, false, nil, nil
		if _, err := tx.Exec(tctx, "SAVEPOINT semrpc_call"); err != nil {
			return err
		}
		reply, p, appErr := callMethod(semantics.ContextWithTx(ctx, tx), fn)
		var r callResult
		switch {
		case p != nil:
			panicked = p
			return s.abandonCall(tctx, tx, &r, nil)
		case appErr != nil:
			out = semantics.Outcome{Reply: reply, Err: appErr}
			return s.abandonCall(tctx, tx, &r, nil)
		}
		if _, err := tx.Exec(tctx, "RELEASE SAVEPOINT semrpc_call"); err != nil {
			own = notRun(what, err)
			return s.abandonCall(tctx, tx, &r, nil)
		}
		out, ran = semantics.Outcome{Reply: reply, Err: nil}, true
		return nil
	})
	if panicked != nil {
		panic(panicked)
	}
	switch {
	case own != nil:
		return semantics.Outcome{}, own
	case err == nil:
		return out, nil
	case ran && isCommitUnknown(err):
		return semantics.Outcome{}, semantics.MaybeExecuted(fmt.Errorf("pgstore: committing %s: %w", what, err))
	}
	return semantics.Outcome{}, notRun(what, err)
}

// commitError is the error of a transaction whose COMMIT was sent and got
// no answer: it may have committed.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// isCommitUnknown reports whether err leaves a transaction's fate unknown.
func isCommitUnknown(err error) bool {
	var ce *commitError
	return errors.As(err, &ce)
}

// commitCall is one call waiting for a transaction.
type commitCall struct {
	fn   func(ctx context.Context, tx pgx.Tx, ts *txState) error
	done chan error // one value: the transaction's result, or errLead
}

// errLead tells a queued call to run the next transaction.
var errLead = errors.New("pgstore: lead the next group commit")

// maxBatchCalls bounds the calls of one shared transaction.
const maxBatchCalls = 256

// commit runs fn in a transaction, shared with calls that arrive together
// unless the store was opened with NoBatch. Up to maxTx callers run
// transactions at once (leaders); a caller that finds them all running
// queues, and a leader that finishes hands the lead to the first queued
// caller, who takes every queued call into its transaction. No goroutine
// of the store's own.
func (s *Store) commit(fn func(ctx context.Context, tx pgx.Tx, ts *txState) error) error {
	if s.closed.Load() {
		return errors.New("store closed")
	}
	c := &commitCall{fn: fn, done: make(chan error, 1)}
	if s.noBatch {
		s.runBatch([]*commitCall{c})
		return <-c.done
	}
	s.cmu.Lock()
	lead := s.leaders < s.maxTx
	if lead {
		s.leaders++
	} else {
		s.queue = append(s.queue, c)
	}
	s.cmu.Unlock()
	if !lead {
		if err := <-c.done; err != errLead {
			return err
		}
	}
	s.lead(c)
	return <-c.done
}

// lead runs one transaction for own and the calls queued (up to
// maxBatchCalls in all), then hands the lead to the first call still
// queued, or ends it.
func (s *Store) lead(own *commitCall) {
	s.cmu.Lock()
	n := min(len(s.queue), maxBatchCalls-1)
	batch := make([]*commitCall, 0, n+1)
	batch = append(batch, own)
	batch = append(batch, s.queue[:n]...)
	s.queue = append(s.queue[:0], s.queue[n:]...)
	s.cmu.Unlock()

	s.runBatch(batch)
	s.maybeSweep()

	s.cmu.Lock()
	if len(s.queue) == 0 {
		s.leaders--
	} else {
		s.queue[0].done <- errLead
		s.queue = append(s.queue[:0], s.queue[1:]...)
	}
	s.cmu.Unlock()
}

// runBatch runs batch's functions in one transaction and gives each call
// the transaction's result.
func (s *Store) runBatch(batch []*commitCall) {
	err := s.runTx(batch)
	for _, c := range batch {
		c.done <- err
	}
}

func (s *Store) runTx(batch []*commitCall) error {
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	s.txs.Add(1)
	var ts txState
	for i, c := range batch {
		ts.last = i == len(batch)-1
		if err := c.fn(ctx, tx, &ts); err != nil {
			if !isCommitUnknown(err) {
				tx.Rollback(ctx)
			}
			return err
		}
	}
	if ts.committed {
		// pgx's tx was committed under it: the connection is idle, and
		// the pool takes it back.
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Severity == "ERROR" {
			return err // the server refused the commit: nothing committed
		}
		// No answer, or the connection ended (FATAL): only the database
		// knows whether it committed.
		return &commitError{err}
	}
	return nil
}

// maybeSweep deletes, at most once per quarter of the keep time, the
// sessions no server has used for longer than it, with their records.
func (s *Store) maybeSweep() {
	now := time.Now()
	s.sweepMu.Lock()
	due := now.Sub(s.lastSweep) >= s.keep/4
	if due {
		s.lastSweep = now
	}
	s.sweepMu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM semrpc_records r USING semrpc_sessions s
		WHERE r.client = s.client AND s.last_active < now() - $1 * interval '1 microsecond'`, s.keep.Microseconds())
	b.Queue("DELETE FROM semrpc_sessions WHERE last_active < now() - $1 * interval '1 microsecond'", s.keep.Microseconds())
	_ = s.pool.SendBatch(ctx, b).Close() // retried at the next sweep
}

// notRun returns the error of a call whose transaction committed nothing
// of it.
func notRun(what string, err error) error {
	return fmt.Errorf("pgstore: %s not run: %w: %v", what, semantics.ErrRejected, err)
}

// callName names the call h in errors.
func callName(h semantics.Header) string {
	return fmt.Sprintf("client %v seq %d", h.Client, h.Seq)
}

// storedOutcome is the outcome of a record read from the database.
func storedOutcome(method string, failed bool, errText string, reply []byte) semantics.Outcome {
	out := semantics.Outcome{Reply: &semantics.StoredReply{Method: method, Data: reply}}
	if failed {
		out.Err = semantics.RecordedError(errText)
	}
	return out
}

func clientKey(id semantics.ClientID) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k[:8], id.Hi)
	binary.BigEndian.PutUint64(k[8:], id.Lo)
	return k
}
