// Package labtest runs lab-style tests in virtual time.
//
// A Raft lab suite spends nearly all of its minutes sleeping: waiting for
// elections, for agreement, for a partition to heal. Virtual runs a test in
// a testing/synctest bubble, where a sleep, a timer or a timeout takes no
// real time, and where every message of a labrpc network made during the
// test takes a small virtual latency (DefaultLatency), so loops bounded by
// elapsed time still end:
//
//	func TestInitialElection3A(t *testing.T) {
//		labtest.Virtual(t, func(t *testing.T) {
//			cfg := make_config(t, 3, false, false)
//			defer cfg.cleanup()
//			...
//		})
//	}
//
// The labtest command (labrpc/cmd/labtest) does this for every Test
// function of a lab without touching its files.
//
// # What virtual time cannot do, and what Virtual does then
//
//   - Goroutines left blocked after the test (many solutions leave some
//     after Kill) would make synctest fail the test; Virtual tolerates
//     them and lists them with -v. Strict fails on them, except on
//     goroutines left sleeping (the clock stops when the test returns;
//     in real time they would wake) and the tester's own (in the
//     course's files: tester1, kvtest1, test.go, raft1/server.go,
//     kvraft1/rsm/server.go, config.go; the 2025 tester's applier waits
//     on applyCh for good), which -v lists apart.
//   - A goroutine waiting on a sync.Mutex held by a sleeping goroutine
//     stops the virtual clock for good (mutex waits are not durably
//     blocking). A watchdog sees the clock stop within about a second of
//     real time, names the goroutines and the lock, and reruns the test in
//     real time, unless the holder waits on a nil channel or in an empty
//     select: nothing can wake it, so the test fails at once, with its
//     timeline, instead of hanging in real time until the -timeout.
//   - A test whose virtual clock runs slower than the real one (CPU-bound
//     work, or a loop that never blocks) is detected the same way. Inside
//     the labtest command the test process ends and the test is rerun in
//     real time in a new one. Called directly, Virtual lets it go on in
//     virtual time (correct, only slower), but fails a test whose clock
//     stands still for a few seconds while its goroutines run, naming them
//     and saying how to run it in real time (LABTEST_REAL_TESTS): a bubble
//     cannot be stopped, so it cannot be rerun beside itself.
//   - A test blocked for good fails when its virtual clock passes the go
//     test -timeout, with its goroutines listed, instead of hanging, and
//     its timeline written.
//
// # Sleeping or waiting while holding a lock
//
// Sleeping, or waiting on a channel, while holding a mutex is a bug (every
// goroutine that needs the lock waits too), and in virtual time it is what
// usually stops the clock. When Virtual diagnoses a stall (or a test that
// times out), it names each goroutine that sleeps or waits on a channel
// while it can be shown to hold a lock, with the lock as the source writes
// it and the lines: "goroutine 29 sleeps in raft.(*Raft).ticker
// (raft.go:810) holding rf.mu, locked at raft.go:805 in
// raft.(*Raft).ticker". This is a warning even when the rerun in real
// time passes (the labtest command prints it after go test's output);
// Strict fails the test on it instead.
//
// A mutex does not record its owner, so the proof comes from the source:
// for every function on the goroutine's stack, labtest reads the function
// and claims a lock only if the function called X.Lock() (or RLock) in a
// statement that runs on every path to the line the goroutine is at, and
// no X.Unlock() can have run since (a deferred Unlock runs only at return;
// a branch that returns or continues does not fall through; a lock taken
// before a loop whose body unlocks it is not claimed inside the loop).
// Goroutines that cannot be shown to hold a lock (the tester's
// checkOneLeader sleeping between checks) are not named. It cannot see a
// lock taken in a helper (rf.lock()), held across a return, or taken
// through another name for the same mutex, nor read a file built with
// -trimpath: those are missed, never guessed. A holder is said to hold
// the very lock a waiter wants only when both reach it through the
// receivers of methods of the same type whose pointers, as the stack
// trace prints them, are equal.
//   - t.Run, t.Parallel and t.Deadline are refused inside bubbles; a test
//     calling them runs in real time.
//
// When a test fails, the timeline of every labrpc network it made is
// written to a file (in LABTEST_TRACE_DIR or the temporary directory) and
// its path is logged: a failure, a stall or spin that fails it, a test
// that passes its -timeout in virtual time, and a test still running in
// real time two seconds before the go test -timeout ends the process (the
// paths then go to the standard error, since the process dies).
package labtest
