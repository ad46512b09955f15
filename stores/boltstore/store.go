package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/semantics"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// TxOf returns the bbolt read-write transaction that ctx runs in, or nil:
// semantics.TxOf[*bbolt.Tx] for the methods of a server whose store is a
// Store. A Store gives it to the method of every call it runs (Execute and
// Transact): the method reads and writes its own buckets through it, so
// that its effects commit together with the call's completion record, or
// are rolled back if it returns an error. The transaction ends when the
// method returns; keep no reference to it, or to the byte slices it
// returns, beyond that.
func TxOf(ctx context.Context) *bbolt.Tx {
	tx, _ := semantics.TxOf[*bbolt.Tx](ctx)
	return tx
}

// Store defaults.
const (
	// DefaultMaxBatchDelay is the fixed time a Store waits for more
	// calls before it begins a transaction: none. A transaction begins as
	// soon as the previous one has committed, and takes every call that
	// queued while it committed (group commit without a fixed window);
	// only when far fewer calls are queued than the last transaction took
	// does it wait briefly for them (see Config.MaxBatchDelay).
	DefaultMaxBatchDelay = 0

	// DefaultLockTimeout is how long Open waits for another
	// process to release the file.
	DefaultLockTimeout = time.Second
)

// The store's buckets. Everything else in the file belongs to the service.
var (
	bucketMeta     = []byte("semrpc.meta")
	bucketSessions = []byte("semrpc.sessions") // client id (16 bytes) → ack, last activity
	bucketRecords  = []byte("semrpc.records")  // client id, seq (24 bytes) → record
	keyEpoch       = []byte("epoch")
	keyFormat      = []byte("format")
)

const (
	storeFormat  = 1 // the layout of the buckets above
	recordFormat = 1 // the first byte of every record
)

// Config configures a Store. A nil *Config means the defaults.
type Config struct {
	// Table configures the table the store rebuilds; its Epoch and Store
	// fields are ignored (the epoch is the store's). Its Lease also bounds
	// how long the store keeps an idle session's records: twice the lease.
	Table semantics.TableConfig

	// NoBatch commits each call in a transaction of its own, with its own
	// fsync, instead of gathering concurrent calls into one. For
	// measurements.
	NoBatch bool

	// MaxBatchDelay is a fixed time the store waits, before it begins a
	// transaction, for more calls to share it (and its fsync). Zero (the
	// default, DefaultMaxBatchDelay) waits for none: calls that arrive
	// while a transaction commits queue, and the next transaction, begun
	// as soon as that commit ends, takes them all (waiting at most half a
	// commit, and 1 ms, for more only when far fewer are queued than the
	// last transaction took).
	MaxBatchDelay time.Duration

	// LockTimeout bounds how long Open waits for another process
	// to release the file. Default DefaultLockTimeout.
	LockTimeout time.Duration

	// NoSync skips fsync: a process crash loses nothing, a machine crash
	// may lose or corrupt everything. For tests only.
	NoSync bool
}

// Store is a semantics.Store in one bbolt file. Each call it runs (Execute or
// Transact) runs in a read-write transaction that the method reaches
// through TxOf (or the Update and View helpers): the service keeps its
// own state in its own buckets of the same file, and the call's completion
// record is committed with that state, in one transaction, before the
// reply is sent. A method that returns an error has its writes rolled
// back; its completion record (with the error) commits in a transaction
// of its own. Concurrent calls share transactions and fsyncs (group
// commit); a method that returns an error is then run once more, alone,
// before its record commits, so that the error it reports was computed on
// committed state.
//
// The method holds bbolt's only writer lock while it runs: it must not
// call DB().Update (which would wait for that lock forever) nor use DB()
// at all; see DB.
//
// Acknowledged records are deleted in later transactions of the same
// session, and sessions idle for twice the table's lease with all their
// records in later transactions of any session.
type Store struct {
	db      *bbolt.DB
	path    string
	table   *semantics.Table
	epoch   uint64
	now     func() time.Time
	keep    time.Duration // how long an idle session's records are kept
	noBatch bool
	delay   time.Duration // MaxBatchDelay
	failed  atomic.Bool

	// calls recycles commitCalls and their channels. It is the store's own,
	// not the package's: a channel made in a testing/synctest bubble must
	// not be used outside it, so a store made in a bubble keeps its
	// channels there.
	calls sync.Pool

	cmu     sync.Mutex    // protects queue, spare and leading
	queue   []*commitCall // calls waiting for the next transaction
	spare   []*commitCall // the last batch's slice, reused for the queue
	leading bool          // a caller is running transactions for the queue

	// Group commit statistics and gathering; see gather.
	lastBatch  int           // calls in the last transaction
	lastCommit time.Duration // how long it took
	filled     chan struct{} // closed when the queue holds fillAt calls
	fillAt     int

	sweepMu   sync.Mutex // protects lastSweep
	lastSweep time.Time
}

var _ semantics.Store = (*Store)(nil)

// Open opens the store in the file at path, creating it if it does not
// exist (and its directory, with mode 0700, if that does not exist
// either), and rebuilds the table from its records.
// A file that is not a bbolt database, or a bbolt database that is not a
// semrpc store, is an error: a store never silently starts empty over
// existing data.
func Open(path string, cfg *Config) (*Store, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.MaxBatchDelay < 0 {
		c.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.Table.Now == nil {
		c.Table.Now = time.Now
	}
	if c.Table.Lease <= 0 {
		c.Table.Lease = semantics.DefaultLease
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: creating the store's directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("boltstore: store directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("boltstore: store directory %s is not a directory", dir)
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("boltstore: store %s is not a regular file", path)
	} else if err == nil && fi.Size() == 0 {
		// bbolt would quietly initialise it: an empty store where records
		// were expected. Left by a crash while the file was first created,
		// or by data loss; either way, a person decides.
		return nil, fmt.Errorf("boltstore: store %s exists but is empty (0 bytes): remove it to start a new store", path)
	}
	db, err := openBolt(path, &bbolt.Options{Timeout: c.LockTimeout, NoSync: c.NoSync})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("boltstore: store %s is locked by another process: %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("boltstore: store %s is not a usable bbolt database: %w", path, err)
	}
	s := &Store{
		db:      db,
		path:    path,
		now:     c.Table.Now,
		keep:    2 * c.Table.Lease,
		noBatch: c.NoBatch,
		delay:   c.MaxBatchDelay,
	}
	if err := s.load(c.Table); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: store %s: %w", path, err)
	}
	s.lastSweep = s.now()
	return s, nil
}

// openBolt is bbolt.Open, with a panic (bbolt trusts the pages it reads,
// and panics on some damaged files, such as truncated ones) or a memory
// fault in the mapped file turned into an error. After a panic the file
// may stay locked until the process exits.
func openBolt(path string, opts *bbolt.Options) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("corrupt database: %v", p)
		}
	}()
	return bbolt.Open(path, 0o600, opts)
}

// load checks the file, reads (or, in a new file, writes) the epoch and
// rebuilds the table.
func (s *Store) load(tc semantics.TableConfig) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt database: %v", p)
		}
	}()
	err = s.db.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine ends with it
			if first == nil {
				first = fmt.Errorf("corrupt database: %w", err)
			}
		}
		return first
	})
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return s.create(tx)
		}
		if f := meta.Get(keyFormat); len(f) != 8 || binary.BigEndian.Uint64(f) != storeFormat {
			return fmt.Errorf("unknown store format %x", f)
		}
		e := meta.Get(keyEpoch)
		if len(e) != 8 || binary.BigEndian.Uint64(e) == 0 {
			return fmt.Errorf("bad epoch %x", e)
		}
		if tx.Bucket(bucketSessions) == nil || tx.Bucket(bucketRecords) == nil {
			return errors.New("missing buckets")
		}
		s.epoch = binary.BigEndian.Uint64(e)
		return nil
	})
	if err != nil {
		return err
	}
	tc.Epoch, tc.Store = s.epoch, s
	s.table = semantics.NewTable(&tc)
	return s.db.View(func(tx *bbolt.Tx) error {
		acks := make(map[semantics.ClientID]uint64)
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			if len(k) != 16 || len(v) != 16 {
				return fmt.Errorf("bad session entry %x", k)
			}
			id := clientFromKey(k)
			acks[id] = binary.BigEndian.Uint64(v)
			s.table.RestoreSession(id, acks[id])
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if len(k) != 24 {
				return fmt.Errorf("bad record key %x", k)
			}
			id, seq := clientFromKey(k), binary.BigEndian.Uint64(k[16:])
			out, _, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("record of client %v seq %d: %w", id, seq, err)
			}
			if seq >= acks[id] { // acknowledged ones wait for deletion
				s.table.Restore(semantics.Header{Client: id, Seq: seq, Ack: 1, Epoch: s.epoch}, out)
			}
			return nil
		})
	})
}

// create initialises a new store in tx. A database that holds anything
// else is not taken over.
func (s *Store) create(tx *bbolt.Tx) error {
	var other []string
	_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		other = append(other, string(name))
		return nil
	})
	if len(other) > 0 {
		return fmt.Errorf("not a semrpc store (buckets %q, no %s)", other, bucketMeta)
	}
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketSessions); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketRecords); err != nil {
		return err
	}
	s.epoch = semantics.NewEpoch()
	if err := meta.Put(keyFormat, binary.BigEndian.AppendUint64(nil, storeFormat)); err != nil {
		return err
	}
	return meta.Put(keyEpoch, binary.BigEndian.AppendUint64(nil, s.epoch))
}

// Table returns the table rebuilt from the store's records.
func (s *Store) Table() *semantics.Table { return s.table }

// Epoch returns the store's server epoch, the same across restarts.
func (s *Store) Epoch() uint64 { return s.epoch }

// DB returns the bbolt database, for setup before the server serves (the
// service creating its buckets, migrating its data) and for reading the
// file after it stopped. Methods must not use it: every call of a durable
// server runs in a store transaction that holds bbolt's only writer lock,
// so DB().Update in a method waits for itself forever, and DB().View sees
// the state without the call's own writes. Methods use TxOf(ctx), or
// Update and View with their ctx.
func (s *Store) DB() *bbolt.DB { return s.db }

// Path returns the store's file name.
func (s *Store) Path() string { return s.path }

// Close closes the file. Calls executed after Close fail as not executed.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in ctx's transaction (see TxOf) if there is one, and
// otherwise in a read-write transaction of its own. A method passes its
// own ctx, which on a durable server always carries the call's
// transaction; without one (setup code, tests) Update is DB().Update, which
// a method must never reach: it would wait forever for the writer lock its
// own call holds. fn's error is returned; in ctx's transaction it does not
// by itself roll back what fn wrote: the method's result decides (an error
// rolls back all the method's writes, nil commits them).
func (s *Store) Update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if tx := TxOf(ctx); tx != nil {
		return fn(tx)
	}
	return s.db.Update(fn)
}

// View is Update for reads: it runs fn in ctx's transaction if there is
// one, and otherwise in a read-only transaction of its own (which, from a
// method, would not see the call's own writes).
func (s *Store) View(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if tx := TxOf(ctx); tx != nil {
		return fn(tx)
	}
	return s.db.View(fn)
}

// errRollback is what a transaction function returns to have bbolt roll
// back the writes of a method that returned an application error. It never
// leaves the store.
var errRollback = errors.New("boltstore: application error: rolling back the method's writes")

// commit runs fn in a read-write transaction: one shared with concurrent
// calls, or one of its own with NoBatch. If fn returns an error in a
// shared transaction, that transaction is rolled back, fn runs again alone
// (so a method that returned an application error runs a second time, on
// committed state) and the others run again in a new one.
//
// Group commit: the first caller that finds no transaction running leads.
// It takes every queued call (its own included) into one transaction and
// commits it (one fsync); calls that arrive meanwhile queue. When its own
// call is done, it hands the lead to the first queued caller, which
// begins the next transaction at once with the whole queue. No timer, no
// goroutine of the store's own: a lone call commits without waiting, and
// under load each transaction takes everything that queued during the
// previous fsync (and, when that is far less than the last transaction
// took, what comes within a short wait: see gather).
func (s *Store) commit(fn func(tx *bbolt.Tx) error) error {
	if s.noBatch {
		return s.db.Update(fn)
	}
	c, _ := s.calls.Get().(*commitCall)
	if c == nil {
		c = &commitCall{done: make(chan error, 1)}
	}
	c.fn = fn
	defer func() {
		c.fn = nil // done is empty: every value sent on it was received
		s.calls.Put(c)
	}()
	s.cmu.Lock()
	s.queue = append(s.queue, c)
	if s.filled != nil && len(s.queue) >= s.fillAt {
		close(s.filled)
		s.filled = nil
	}
	lead := !s.leading
	s.leading = true
	s.cmu.Unlock()
	err := errLead
	if !lead {
		err = <-c.done
	}
	if err == errLead {
		s.lead(c)
		err = <-c.done
	}
	if err == errSolo {
		return s.db.Update(fn)
	}
	return err
}

// commitCall is one call waiting in the commit queue.
type commitCall struct {
	fn   func(tx *bbolt.Tx) error
	done chan error // one value: the commit's result, errSolo or errLead
}

// Signals on commitCall.done; they never leave the store.
var (
	errLead = errors.New("boltstore: lead the next group commit")
	errSolo = errors.New("boltstore: run alone: the shared transaction failed in this call")
)

// maxBatchCalls bounds the calls of one shared transaction.
const maxBatchCalls = 1000

// lead runs transactions for the queue until own's is done, then hands
// the lead to the first queued caller, or ends it if none is queued.
func (s *Store) lead(own *commitCall) {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	for {
		s.gather()
		s.cmu.Lock()
		batch := s.queue
		if len(batch) > maxBatchCalls {
			s.queue = append(s.spare[:0], batch[maxBatchCalls:]...)
			batch = batch[:maxBatchCalls]
		} else {
			s.queue = s.spare[:0]
		}
		s.spare = nil
		s.cmu.Unlock()

		start := time.Now()
		s.runBatch(batch)
		took := time.Since(start)

		s.cmu.Lock()
		s.lastBatch, s.lastCommit = len(batch), took
		clear(batch[:cap(batch)])
		s.spare = batch[:0]
		if len(own.done) == 0 { // not in this batch: more than maxBatchCalls were queued
			s.cmu.Unlock()
			continue
		}
		if len(s.queue) == 0 {
			s.leading = false
		} else {
			s.queue[0].done <- errLead
		}
		s.cmu.Unlock()
		return
	}
}

// maxGather bounds how long gather waits.
const maxGather = time.Millisecond

// gather waits, when the queue holds less than half as many calls as the
// last transaction took, until it holds that many or half the time the
// last transaction took has passed (at most maxGather). Callers that get
// their replies from one transaction and call again mostly arrive just
// after the next one began: without the wait, transactions would
// alternate between the calls that came during the previous commit and
// those that came just after it, each paying a whole commit. A lone
// caller (a last transaction of one call) never waits.
func (s *Store) gather() {
	s.cmu.Lock()
	want := s.lastBatch / 2
	if len(s.queue) >= want || s.delay > 0 {
		s.cmu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.filled, s.fillAt = ch, want
	wait := min(s.lastCommit/2, maxGather)
	s.cmu.Unlock()
	t := time.NewTimer(wait)
	select {
	case <-ch:
	case <-t.C:
	}
	t.Stop()
	s.cmu.Lock()
	s.filled = nil
	s.cmu.Unlock()
}

// runBatch runs batch's functions in one transaction and gives each call
// the commit's result. A function that fails is taken out (its caller
// runs it alone) and the rest run again in a new transaction.
func (s *Store) runBatch(batch []*commitCall) {
	for len(batch) > 0 {
		failed := -1
		err := s.db.Update(func(tx *bbolt.Tx) error {
			for i, c := range batch {
				if err := callRecovering(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].done <- errSolo
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		for _, c := range batch {
			c.done <- err
		}
		return
	}
}

// callRecovering calls fn, turning a panic into an error: the transaction
// is rolled back and fn's caller runs it again alone, where it panics on
// its own goroutine.
func callRecovering(fn func(tx *bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("boltstore: panic in a shared transaction: %v", p)
		}
	}()
	return fn(tx)
}

// refusedFailed returns the error of a call refused because an earlier
// commit failed.
func refusedFailed(what string) error {
	return fmt.Errorf("boltstore: %s not run: %w: %w", what, semantics.ErrStoreFailed, semantics.ErrRejected)
}

// commitFailed stops the store after a failed commit of a call that ran
// (its writes or its record may be on disk) and returns the call's error.
func (s *Store) commitFailed(what string, err error) error {
	s.failed.Store(true)
	return semantics.MaybeExecuted(fmt.Errorf("boltstore: committing %s: %w: %v", what, semantics.ErrStoreFailed, err))
}

// callName names the call h in errors.
func callName(h semantics.Header) string { return fmt.Sprintf("client %v seq %d", h.Client, h.Seq) }

// notRun returns the error of a call whose transaction failed before it
// could commit anything.
func notRun(what string, err error) error {
	return fmt.Errorf("boltstore: %s not run: %w: %v", what, semantics.ErrRejected, err)
}

// Execute implements semantics.Store. Concurrent calls share one transaction and one
// fsync unless the store was opened with NoBatch; fn then runs on another
// goroutine, and runs again if a transaction it shared fails for a reason
// of another call's, or, alone, if it returned an application error. An
// application error costs one more transaction: the one that commits the
// record without fn's writes.
func (s *Store) Execute(ctx context.Context, h semantics.Header, method string, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	if s.failed.Load() {
		return semantics.Outcome{}, refusedFailed(callName(h))
	}
	// What the last run of txFn did; bbolt may run it several times.
	var (
		out      semantics.Outcome
		ran      bool  // it ran fn
		answered bool  // it found h's record and wrote only the session
		own      error // its own result: nil, errRollback or a store error
	)
	txFn := func(tx *bbolt.Tx) error {
		out, ran, answered, own = semantics.Outcome{}, false, false, nil
		prior, err := s.admit(tx, h)
		switch {
		case err != nil:
		case prior != nil:
			out, answered = *prior, true
		default:
			ran = true
			reply, appErr := fn(semantics.ContextWithTx(ctx, tx))
			out = semantics.Outcome{Reply: reply, Err: appErr}
			if appErr != nil {
				err = errRollback
			} else {
				err = s.putRecord(tx, h, method, reply, nil)
			}
		}
		if err == nil {
			err = s.maybeSweep(tx)
		}
		own = err
		return err
	}
	err := s.commit(txFn)
	switch {
	case err == nil:
		return out, nil
	case own == errRollback && errors.Is(err, errRollback) && errors.Is(out.Err, semantics.ErrMaybeExecuted):
		// Not the method's answer (the server stopped under it, say):
		// nothing is recorded, and a retry may run the call afresh.
		return semantics.Outcome{}, out.Err
	case own == errRollback && errors.Is(err, errRollback):
		return s.executeFailed(h, method, out)
	case errors.Is(err, semantics.ErrStale):
		return semantics.Outcome{}, err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return semantics.Outcome{}, notRun(callName(h), err)
	case own == nil && ran:
		// The commit itself failed: the record may or may not be on disk,
		// and only a restart will tell. Run nothing more until then.
		return semantics.Outcome{}, s.commitFailed(callName(h), err)
	case own == nil && answered:
		// The commit of a call answered from its record failed (it wrote
		// the session's ack): the same disk error, so the same stop. This
		// request ran nothing.
		s.failed.Store(true)
		return semantics.Outcome{}, fmt.Errorf("boltstore: committing %s: %w: %w: %v", callName(h), semantics.ErrStoreFailed, semantics.ErrRejected, err)
	}
	return semantics.Outcome{}, notRun(callName(h), err)
}

// executeFailed commits the completion record of h, whose method ran and
// returned the application error in out, in a transaction without the
// method's writes (they were rolled back).
func (s *Store) executeFailed(h semantics.Header, method string, out semantics.Outcome) (semantics.Outcome, error) {
	what := callName(h)
	var (
		res      semantics.Outcome
		answered bool
		own      error
	)
	recFn := func(tx *bbolt.Tx) error {
		res, answered, own = out, false, nil
		prior, err := s.admit(tx, h)
		switch {
		case err != nil:
		case prior != nil: // not expected: the table lets one NEW run at a time
			res, answered = *prior, true
		default:
			err = s.putRecord(tx, h, method, out.Reply, out.Err)
		}
		if err == nil {
			err = s.maybeSweep(tx)
		}
		own = err
		return err
	}
	err := s.commit(recFn)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, semantics.ErrStale):
		// Acknowledged meanwhile (the client gave up on the call): its
		// writes were rolled back and nobody may ask for it again.
		return semantics.Outcome{}, err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return semantics.Outcome{}, notRun(what, err)
	case own == nil && !answered:
		// The record may be on disk.
		return semantics.Outcome{}, s.commitFailed(what, err)
	case own == nil:
		s.failed.Store(true)
		return semantics.Outcome{}, fmt.Errorf("boltstore: committing %s: %w: %w: %v", what, semantics.ErrStoreFailed, semantics.ErrRejected, err)
	}
	return semantics.Outcome{}, notRun(what, err)
}

// OpenSession implements semantics.Store: it writes the session with ack 1, sharing
// a transaction and an fsync with concurrent calls.
func (s *Store) OpenSession(id semantics.ClientID) error {
	what := "opening session " + id.String()
	if s.failed.Load() {
		return refusedFailed(what)
	}
	err := s.commit(func(tx *bbolt.Tx) error {
		var v [16]byte
		binary.BigEndian.PutUint64(v[:8], 1)
		binary.BigEndian.PutUint64(v[8:], uint64(s.now().UnixNano()))
		return tx.Bucket(bucketSessions).Put(clientKey(id), v[:])
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return notRun(what, err)
	}
	// The session may or may not be on disk; it is never used (nothing
	// ran), but what else is on disk is only known after a restart.
	s.failed.Store(true)
	return fmt.Errorf("boltstore: committing %s: %w: %w: %v", what, semantics.ErrStoreFailed, semantics.ErrRejected, err)
}

// Transact implements semantics.Store. Like Execute, it shares transactions with
// concurrent calls unless the store was opened with NoBatch, and then a
// method that returned an application error runs once more, alone.
func (s *Store) Transact(ctx context.Context, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	const what = "call without a header"
	if s.failed.Load() {
		return semantics.Outcome{}, refusedFailed(what)
	}
	var (
		out semantics.Outcome
		ran bool
		own error
	)
	txFn := func(tx *bbolt.Tx) error {
		ran = true
		reply, appErr := fn(semantics.ContextWithTx(ctx, tx))
		out, own = semantics.Outcome{Reply: reply, Err: appErr}, nil
		if appErr != nil {
			own = errRollback
		}
		return own
	}
	err := s.commit(txFn)
	switch {
	case err == nil:
		return out, nil
	case own == errRollback && errors.Is(err, errRollback):
		return out, nil // rolled back, as an application error must be
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return semantics.Outcome{}, notRun(what, err)
	case own == nil && ran:
		return semantics.Outcome{}, s.commitFailed(what, err)
	}
	return semantics.Outcome{}, notRun(what, err)
}

// admit updates h's session in tx: it advances the durable ack, deleting
// the records below it, and notes the activity. It returns the record of h
// if the store holds one, or semantics.ErrStale if h was acknowledged.
func (s *Store) admit(tx *bbolt.Tx, h semantics.Header) (*semantics.Outcome, error) {
	sessions, records := tx.Bucket(bucketSessions), tx.Bucket(bucketRecords)
	key := clientKey(h.Client)
	ack := uint64(1)
	if v := sessions.Get(key); len(v) == 16 {
		ack = binary.BigEndian.Uint64(v)
	}
	if h.Ack > ack {
		if err := deleteRecords(records, key, h.Ack); err != nil {
			return nil, err
		}
		ack = h.Ack
	}
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], ack)
	binary.BigEndian.PutUint64(v[8:], uint64(s.now().UnixNano()))
	if err := sessions.Put(key, v[:]); err != nil {
		return nil, err
	}
	if h.Seq < ack {
		return nil, fmt.Errorf("boltstore: client %v seq %d < durable ack %d: %w", h.Client, h.Seq, ack, semantics.ErrStale)
	}
	if rec := records.Get(recordKey(h.Client, h.Seq)); rec != nil {
		out, _, err := decodeRecord(rec)
		if err != nil {
			return nil, err
		}
		return &out, nil
	}
	return nil, nil
}

func (s *Store) putRecord(tx *bbolt.Tx, h semantics.Header, method string, reply any, appErr error) error {
	data, err := semantics.EncodeReply(method, reply)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketRecords).Put(recordKey(h.Client, h.Seq), encodeRecord(method, appErr, data))
}

// maybeSweep deletes, at most once per quarter of the keep time, the
// sessions idle for longer than it, with their records.
func (s *Store) maybeSweep(tx *bbolt.Tx) error {
	now := s.now()
	s.sweepMu.Lock()
	due := now.Sub(s.lastSweep) >= s.keep/4
	if due {
		s.lastSweep = now
	}
	s.sweepMu.Unlock()
	if !due {
		return nil
	}
	sessions, records := tx.Bucket(bucketSessions), tx.Bucket(bucketRecords)
	var idle [][]byte
	cut := now.Add(-s.keep).UnixNano()
	err := sessions.ForEach(func(k, v []byte) error {
		if len(v) == 16 && int64(binary.BigEndian.Uint64(v[8:])) < cut {
			idle = append(idle, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range idle {
		if err := deleteRecords(records, k, ^uint64(0)); err != nil {
			return err
		}
		if err := sessions.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteRecords deletes the records of the client whose key is client with
// a seq below ack.
func deleteRecords(records *bbolt.Bucket, client []byte, ack uint64) error {
	c := records.Cursor()
	for k, _ := c.Seek(client); len(k) == 24 && string(k[:16]) == string(client); k, _ = c.Seek(client) {
		if binary.BigEndian.Uint64(k[16:]) >= ack {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

func clientKey(id semantics.ClientID) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k[:8], id.Hi)
	binary.BigEndian.PutUint64(k[8:], id.Lo)
	return k
}

func clientFromKey(k []byte) semantics.ClientID {
	return semantics.ClientID{Hi: binary.BigEndian.Uint64(k[:8]), Lo: binary.BigEndian.Uint64(k[8:16])}
}

func recordKey(id semantics.ClientID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(clientKey(id), seq)
}

// A record is: format byte, method (uvarint length, bytes), error flag
// byte, error text (uvarint length, bytes), then the gob-encoded reply.
func encodeRecord(method string, appErr error, data []byte) []byte {
	var errText string
	flag := byte(0)
	if appErr != nil {
		flag, errText = 1, appErr.Error()
	}
	b := make([]byte, 0, 2+2*binary.MaxVarintLen64+len(method)+len(errText)+len(data))
	b = append(b, recordFormat)
	b = binary.AppendUvarint(b, uint64(len(method)))
	b = append(b, method...)
	b = append(b, flag)
	b = binary.AppendUvarint(b, uint64(len(errText)))
	b = append(b, errText...)
	return append(b, data...)
}

// decodeRecord parses a record; the outcome's reply is a *semantics.StoredReply that
// owns a copy of the bytes.
func decodeRecord(v []byte) (semantics.Outcome, string, error) {
	bad := func(what string) (semantics.Outcome, string, error) {
		return semantics.Outcome{}, "", fmt.Errorf("malformed completion record (%s)", what)
	}
	if len(v) < 1 || v[0] != recordFormat {
		return bad("format")
	}
	v = v[1:]
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		return bad("method")
	}
	method := string(v[k : k+int(n)])
	v = v[k+int(n):]
	if len(v) < 1 || v[0] > 1 {
		return bad("error flag")
	}
	hasErr := v[0] == 1
	v = v[1:]
	n, k = binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		return bad("error text")
	}
	errText := string(v[k : k+int(n)])
	v = v[k+int(n):]
	out := semantics.Outcome{Reply: &semantics.StoredReply{Method: method, Data: append([]byte(nil), v...)}}
	if hasErr {
		out.Err = semantics.RecordedError(errText)
	}
	return out, method, nil
}
