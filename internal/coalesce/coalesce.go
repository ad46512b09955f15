// Package coalesce is the write side of one stream shared by many
// goroutines: messages are encoded into its buffer under its lock and
// leave in as few writes as possible without waiting for company. semrpc's
// client connections write their requests through one, its server
// connections their replies.
//
// A goroutine that finds no write in progress writes the buffer itself, at
// once (a lone message leaves at once); goroutines that come while a write
// is in progress leave their messages in the buffer and go on, and the
// writer writes them all together when its write returns. grpc-go's
// transport batches the same way ("loopy writer": flush when nothing more
// is queued), with a dedicated goroutine where this one borrows the
// caller's.
//
// Callers woken one after another on the same processor would each find
// the stream idle and write alone. So a writer that knows others are busy
// on the stream (company) yields the processor once before it writes, and
// the messages they queue meanwhile leave with its own. A lone writer does
// not yield.
//
// Each message may carry a tag (T); when a write fails, the tags of the
// messages it did not write whole are reported, so that their senders get
// the right verdict. After a failed write nothing more is written.
//
// # The writer's states
//
// Who writes is one state, changed only by setState, which panics on a
// transition not listed here (TestTransitionsAreTheListedOnes holds the
// list and the code to each other):
//
//	idle    → caller    a goroutine finds no write in progress and writes
//	caller  → idle      its batches are written and nothing is left
//	caller  → flusher   its own batch is written; a goroutine writes what others queued
//	flusher → idle      the flusher wrote everything
//	caller  → failed    a write failed (or was interrupted)
//	flusher → failed    a write failed
//
// While the state is caller, only the goroutine that set it writes; while
// it is flusher, only the flusher goroutine. Every other goroutine only
// appends to the buffer, under the lock. Failed is final.
//
// # Locks
//
// mu protects every field below it. Hooks (OnWritten, OnFailed,
// OnInterrupt) are called without mu, except OnInterrupt, called with mu
// held: it must only close the stream. A user lock may be taken inside
// OnWritten (semrpc's client takes its connection's lock there), so no
// user lock may be held while calling into a Writer, except under Lock.
package coalesce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// MaxQueuedBytes bounds what one stream buffers while a write is in
// progress: beyond it, the next message waits for the write (back
// pressure on a peer that reads slowly, as a blocking write gives).
const MaxQueuedBytes = 1 << 20

// MaxKeptBuffer bounds the buffer a stream keeps between writes.
const MaxKeptBuffer = 64 << 10

// State says who writes the stream.
type State uint8

// The writer's states (see the package comment).
const (
	Idle    State = iota // nobody writes
	Caller               // a goroutine writes its batch (and perhaps others')
	Flusher              // a goroutine of the Writer's own writes what others left
	Failed               // a write failed: nothing is written any more
)

var stateNames = [...]string{"idle", "caller", "flusher", "failed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// Transitions lists the legal changes of State, as the package comment
// does.
var Transitions = map[[2]State]string{
	{Idle, Caller}:    "a goroutine finds no write in progress and writes",
	{Caller, Idle}:    "its batches are written and nothing is left",
	{Caller, Flusher}: "its own batch is written; a goroutine writes what others queued",
	{Flusher, Idle}:   "the flusher wrote everything",
	{Caller, Failed}:  "a write failed (or was interrupted)",
	{Flusher, Failed}: "a write failed",
}

// Writer is the write side of one stream; see the package comment.
type Writer[T any] struct {
	w io.Writer

	// OnWritten, if set, is called for the tag of each message once the
	// write that carried it is over (whole tells whether it was written
	// whole; err is the write's error), before the write ends. After a
	// failed write it is called for the messages queued behind, which are
	// never written.
	OnWritten func(tag T, whole bool, err error)
	// OnFailed, if set, is told of a write that failed on the flusher
	// goroutine; a caller's own failed write is returned to it instead.
	// Without OnFailed there is no flusher: a caller writes until the
	// buffer is empty.
	OnFailed func(err error)
	// OnInterrupt, if set, ends the stream so that a write blocked on it
	// returns (see Interrupt). It is called with the lock held.
	OnInterrupt func()

	backlog atomic.Bool // a hint: the buffer was full behind a write (see Backlogged)

	mu      sync.Mutex // protects following
	state   State
	owner   uint64                // the caller writing (state Caller), as it named itself
	intr    atomic.Pointer[error] // why the writing was interrupted (read by the writer without the lock)
	cur     *batch[T]             // where messages are encoded; written next
	spare   *batch[T]             // the batch being written; only the writer touches it
	err     error                 // the first failed write: nothing is written after it
	waiting int                   // goroutines waiting on written
	written sync.Cond             // broadcast after each write, when goroutines wait
}

// batch is a buffer of whole messages and the tags of those that carry one.
type batch[T any] struct {
	buf  bytes.Buffer
	tags []tagAt[T]
}

// tagAt is a message's tag and the offset just past the message.
type tagAt[T any] struct {
	end int
	tag T
}

// New returns a Writer writing to w.
func New[T any](w io.Writer) *Writer[T] {
	c := &Writer[T]{w: w, cur: new(batch[T]), spare: new(batch[T])}
	c.written.L = &c.mu
	return c
}

// setState changes who writes. The lock must be held.
func (c *Writer[T]) setState(to State) {
	if _, ok := Transitions[[2]State{c.state, to}]; !ok {
		panic(fmt.Sprintf("coalesce: illegal writer transition %v → %v", c.state, to))
	}
	c.state = to
}

// State reports who writes now.
func (c *Writer[T]) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Write appends p to the current batch: the encoder's writer. The lock
// must be held.
func (c *Writer[T]) Write(p []byte) (int, error) { return c.cur.buf.Write(p) }

// Lock takes the lock to encode a message, first waiting while a write is
// in progress and too much is queued behind it.
func (c *Writer[T]) Lock() {
	c.mu.Lock()
	for c.full() {
		c.waitWrite()
	}
}

// Unlock releases the lock without writing.
func (c *Writer[T]) Unlock() { c.mu.Unlock() }

// full reports whether a message must wait for room. The lock must be held.
func (c *Writer[T]) full() bool {
	return (c.state == Caller || c.state == Flusher) && c.cur.buf.Len() >= MaxQueuedBytes
}

// LockCtx is Lock for a goroutine whose wait for room ends with ctx: it
// reports false, without the lock, if ctx ended first.
func (c *Writer[T]) LockCtx(ctx context.Context) bool {
	c.mu.Lock()
	if !c.full() {
		return true
	}
	if ctx.Done() == nil {
		for c.full() {
			c.waitWrite()
		}
		return true
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.written.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.full() {
		if ctx.Err() != nil {
			c.mu.Unlock()
			return false
		}
		c.waitWrite()
	}
	return true
}

// waitWrite waits for the next write to end. The lock must be held.
func (c *Writer[T]) waitWrite() {
	c.waiting++
	c.written.Wait()
	c.waiting--
}

// Buf returns the current batch's buffer, for encoders that must cut a
// message they could not finish. The lock must be held.
func (c *Writer[T]) Buf() *bytes.Buffer { return &c.cur.buf }

// Tag records tag for the message that ends the buffer. The lock must be
// held.
func (c *Writer[T]) Tag(tag T) {
	c.cur.tags = append(c.cur.tags, tagAt[T]{end: c.cur.buf.Len(), tag: tag})
	if c.full() {
		c.backlog.Store(true)
	}
}

// Backlogged reports, without the lock, whether messages were last seen
// waiting for room behind a write: a hint for a reader deciding whether to
// take in more work; Lock or LockCtx then wait for the room itself.
func (c *Writer[T]) Backlogged() bool { return c.backlog.Load() }

// Failed returns the error of the write that failed, or nil. The lock must
// be held.
func (c *Writer[T]) Failed() error { return c.err }

// UnlockAndFlush releases the lock; unless a write is in progress (its
// writer will take the buffer), it first writes the buffer, as owner (a
// number the caller names itself by, for Interrupt; 0 for none), calling
// arm (if not nil) once it knows it will write, with the lock held; with
// company, after yielding once. It returns the error of a write that
// failed; nothing is written after it.
//
// Messages queued by others while this caller wrote are not its own: when
// OnFailed is set, the flusher writes them (and whatever comes meanwhile),
// so that this caller is not held by writes of others' messages, which
// under steady load never end, or hang on a peer that stopped reading.
// Without OnFailed the caller writes until the buffer is empty.
func (c *Writer[T]) UnlockAndFlush(company bool, owner uint64, arm func()) error {
	if c.state != Idle {
		c.mu.Unlock()
		return nil
	}
	c.setState(Caller)
	c.owner = owner
	if arm != nil {
		arm() // the caller will write: its interrupt may be needed now
	}
	if company {
		// Others are about to write: let them queue their messages first
		// (they find a write in progress and go on).
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	if c.cur.buf.Len() > 0 {
		if werr := c.writeBatch(); werr != nil {
			c.mu.Unlock()
			return werr
		}
		if c.cur.buf.Len() > 0 && c.OnFailed != nil {
			c.owner = 0
			c.setState(Flusher)
			c.mu.Unlock()
			go c.flushRest()
			return nil
		}
	}
	for c.cur.buf.Len() > 0 {
		if werr := c.writeBatch(); werr != nil {
			c.mu.Unlock()
			return werr
		}
	}
	c.owner = 0
	c.setState(Idle)
	c.mu.Unlock()
	return nil
}

// flushRest writes what others queued, until the buffer is empty; a
// failed write goes to OnFailed. The state is Flusher.
func (c *Writer[T]) flushRest() {
	c.mu.Lock()
	for c.cur.buf.Len() > 0 {
		if werr := c.writeBatch(); werr != nil {
			c.mu.Unlock()
			c.OnFailed(werr)
			return
		}
	}
	c.setState(Idle)
	c.mu.Unlock()
}

// writeBatch writes the current batch; the lock must be held, the state
// be Caller or Flusher and the batch not empty. The lock is released
// during the write and held again on return. A failed write is recorded,
// the messages queued behind it are told they were not written, and the
// state becomes Failed.
func (c *Writer[T]) writeBatch() error {
	b := c.cur
	c.cur, c.spare = c.spare, b
	c.backlog.Store(false)
	c.mu.Unlock()
	n, werr := c.w.Write(b.buf.Bytes())
	if werr != nil {
		if cause := c.intr.Load(); cause != nil {
			werr = fmt.Errorf("%w (%w)", *cause, werr)
		}
	}
	if c.OnWritten != nil {
		for _, t := range b.tags {
			c.OnWritten(t.tag, werr == nil || t.end <= n, werr)
		}
	}
	b.reset()
	c.mu.Lock()
	if werr != nil {
		c.err = werr // from here on nothing is queued: Failed() says so
		if c.OnWritten != nil {
			tags := c.cur.tags
			c.mu.Unlock()
			for _, t := range tags {
				c.OnWritten(t.tag, false, werr)
			}
			c.mu.Lock()
		}
		c.cur.reset()
		c.owner = 0
		c.setState(Failed)
	}
	// After the state is final: a waiter woken earlier would find the
	// buffer still full and wait again, for a write that never comes.
	if c.waiting > 0 {
		c.written.Broadcast()
	}
	return werr
}

// Interrupt ends the writing of owner, if owner is the writer now (state
// Caller, as it named itself): OnInterrupt ends the stream, and the write
// in progress, or the next, fails with cause. It reports whether it did.
// An owner that is no longer the writer is left alone.
func (c *Writer[T]) Interrupt(owner uint64, cause error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if owner == 0 || c.state != Caller || c.owner != owner || c.OnInterrupt == nil {
		return false
	}
	c.intr.Store(&cause)
	c.OnInterrupt()
	return true
}

// WaitUntil waits until done reports true; done must turn true by the end
// of a write in progress (an OnWritten call, say).
func (c *Writer[T]) WaitUntil(done func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !done() && c.writing() {
		c.waitWrite()
	}
}

// writing reports whether a write is in progress. The lock must be held.
func (c *Writer[T]) writing() bool { return c.state == Caller || c.state == Flusher }

// WaitIdle waits until no write is in progress: after the stream is
// closed, until its writer (a caller or the flusher) has given up.
func (c *Writer[T]) WaitIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.writing() {
		c.waitWrite()
	}
}

// Busy reports whether a write is in progress or messages wait for one.
func (c *Writer[T]) Busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writing() || c.cur.buf.Len() > 0
}

// Err returns the error of the write that failed, or nil.
func (c *Writer[T]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// FlushNow writes everything queued and waits until it is written, by
// this caller or by the one writing now. It reports the failed write's
// error.
func (c *Writer[T]) FlushNow() error {
	c.mu.Lock()
	for c.writing() {
		c.waitWrite()
	}
	if c.state == Failed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if err := c.UnlockAndFlush(false, 0, nil); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Queued reports how many tagged messages wait in the buffer, for tests.
func (c *Writer[T]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur.tags)
}

// QueuedEnds reports where each tagged message waiting in the buffer
// ends, for tests.
func (c *Writer[T]) QueuedEnds() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ends := make([]int, len(c.cur.tags))
	for i, t := range c.cur.tags {
		ends[i] = t.end
	}
	return ends
}

// Buffered reports the bytes waiting in the buffer, for tests.
func (c *Writer[T]) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.buf.Len()
}

// Waiting reports how many goroutines wait for a write to end, for tests.
func (c *Writer[T]) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiting
}

func (b *batch[T]) reset() {
	clear(b.tags) // drop what the tags point to
	b.tags = b.tags[:0]
	b.buf.Reset()
	if b.buf.Cap() > MaxKeptBuffer {
		b.buf = bytes.Buffer{}
	}
}
