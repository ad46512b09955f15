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
//     them and lists them with -v. Strict fails on them.
//   - A goroutine waiting on a sync.Mutex held by a sleeping goroutine
//     stops the virtual clock for good (mutex waits are not durably
//     blocking). A watchdog sees the clock stop within about a second of
//     real time, names the goroutines and the lock, and reruns the test in
//     real time.
//   - A test whose virtual clock runs slower than the real one (CPU-bound
//     work, or a loop that never blocks) is detected the same way. Inside
//     the labtest command the test process ends and the test is rerun in
//     real time in a new one. Called directly, Virtual lets it go on in
//     virtual time (correct, only slower), but fails a test whose clock
//     stands still for a few seconds while its goroutines run, naming them
//     and saying how to run it in real time (LABTEST_REAL_TESTS): a bubble
//     cannot be stopped, so it cannot be rerun beside itself.
//   - A test blocked for good fails when its virtual clock passes the go
//     test -timeout, with its goroutines listed, instead of hanging.
//   - t.Run, t.Parallel and t.Deadline are refused inside bubbles; a test
//     calling them runs in real time.
//
// When a test fails, the timeline of every labrpc network it made is
// written to a file (in LABTEST_TRACE_DIR or the temporary directory) and
// its path is logged.
package labtest
