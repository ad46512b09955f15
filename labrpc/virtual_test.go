package labrpc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
)

// parallel marks a test parallel, except inside a synctest bubble, where
// t.Parallel is not allowed.
func parallel(t *testing.T) {
	if currentBubble() == 0 {
		t.Parallel()
	}
}

// subtest runs f as t.Run(name, f) does, or, inside a synctest bubble
// (where t.Run is not allowed), directly on t.
func subtest(t *testing.T, name string, f func(t *testing.T)) {
	if currentBubble() == 0 {
		t.Run(name, f)
		return
	}
	t.Logf("subtest %s", name)
	f(t)
}

// virtualSuite is every test of the package that also runs in virtual
// time, inside a synctest bubble: TestSuiteInVirtualTime runs them all so.
var virtualSuite = map[string]func(*testing.T){
	"TestHandlerPanicOverRoundTripIsAnErrorAndServerServesOn": TestHandlerPanicOverRoundTripIsAnErrorAndServerServesOn,
	"TestUnknownMethodCrashesCallListingMethods":              TestUnknownMethodCrashesCallListingMethods,
	"TestUnknownMethodOverRoundTripIsARefusal":                TestUnknownMethodOverRoundTripIsARefusal,
	"TestMethodNamesFollowTheHandlerShapes":                   TestMethodNamesFollowTheHandlerShapes,
	"TestClassicHarnessShape":                                 TestClassicHarnessShape,
	"TestBasic":                                               TestBasic,
	"TestTypes":                                               TestTypes,
	"TestNoSharing":                                           TestNoSharing,
	"TestSeveralServices":                                     TestSeveralServices,
	"TestDisconnect":                                          TestDisconnect,
	"TestCounts":                                              TestCounts,
	"TestBytes":                                               TestBytes,
	"TestBytesCountTypeInformationPerMessage":                 TestBytesCountTypeInformationPerMessage,
	"TestHoldsInterface":                                      TestHoldsInterface,
	"TestConcurrentMany":                                      TestConcurrentMany,
	"TestUnreliable":                                          TestUnreliable,
	"TestKilledServer":                                        TestKilledServer,
	"TestDisableDuringHandlerLosesReply":                      TestDisableDuringHandlerLosesReply,
	"TestEnabledCallNotDelayedByEarlierDisabledCalls":         TestEnabledCallNotDelayedByEarlierDisabledCalls,
	"TestLongDelays":                                          TestLongDelays,
	"TestLongReorderingDistribution":                          TestLongReorderingDistribution,
	"TestLongReordering":                                      TestLongReordering,
	"TestSeedReplay":                                          TestSeedReplay,
	"TestDuplicatePlainCallRunsTwice":                         TestDuplicatePlainCallRunsTwice,
	"TestDuplicateAtMostOnceRunsOnce":                         TestDuplicateAtMostOnceRunsOnce,
	"TestRPCClientAtMostOnce":                                 TestRPCClientAtMostOnce,
	"TestLateDuplicateAfterAckIsStale":                        TestLateDuplicateAfterAckIsStale,
	"TestRoundTripErrorClasses":                               TestRoundTripErrorClasses,
	"TestContext":                                             TestContext,
	"TestCleanup":                                             TestCleanup,
	"TestBadArgsLogAndFailButHandlerErrorsDoNotLog":           TestBadArgsLogAndFailButHandlerErrorsDoNotLog,
	"TestAddServiceWithoutMethodsIsSilentUnlessVerbose":       TestAddServiceWithoutMethodsIsSilentUnlessVerbose,
	"TestAddServiceTwiceLogs":                                 TestAddServiceTwiceLogs,
	"TestPartition":                                           TestPartition,
	"TestSetLink":                                             TestSetLink,
	"TestTraceRecordsEachCallStartAndEndingOnce":              TestTraceRecordsEachCallStartAndEndingOnce,
	"TestLabgobChecksInCall":                                  TestLabgobChecksInCall,
	"TestDefaultsWithoutSeed":                                 TestDefaultsWithoutSeed,
	"TestDeleteEnd":                                           TestDeleteEnd,
	"TestChangeWhileARequestIsDelayedReleasesItsCaller":       TestChangeWhileARequestIsDelayedReleasesItsCaller,
	"TestSeedReplaysWithRandomEndNames":                       TestSeedReplaysWithRandomEndNames,
	"TestTraceLabelsEndsAndRecordsTopology":                   TestTraceLabelsEndsAndRecordsTopology,
	"TestSummarizeArgsAndReplies":                             TestSummarizeArgsAndReplies,
	"TestTraceToStreamsInOrderUntilStopped":                   TestTraceToStreamsInOrderUntilStopped,
	"TestTraceToFileWritesJSONLines":                          TestTraceToFileWritesJSONLines,
	"TestSetTraceSizeKeepsTheNewest":                          TestSetTraceSizeKeepsTheNewest,
}

// notVirtual are the tests that do not run inside a bubble, and why.
var notVirtual = map[string]string{
	"TestMain": "not a test",
	"TestHandlerPanicCrashesCallWithHandlersStack": "runs a child process, whose output a bubble cannot wait for durably",
	"TestWriteTimelineDrawsLanesFatesAndTopology":  "makes its own bubble",
	"TestWriteShiVizClocksFollowMessages":          "makes its own bubble",
	"TestSuiteInVirtualTime":                       "runs the suite in bubbles itself",
	"TestEveryTestIsInTheVirtualSuiteOrExcused":    "reads the sources",
	"TestLatencyBoundsTimeLoopsInVirtualTime":      "makes its own bubble",
	"TestLabtestRunSetsLatencyAndRegistersNetwork": "makes its own bubble",
	"TestNetworkMadeOutsideABubbleFailsFastInside": "uses a bubble and its outside",
	"TestNetworkMadeInsideABubbleFailsFastOutside": "uses a bubble and its outside",
	"TestBubbleIDReadsTheStackHeader":              "uses a bubble and its outside",
	"TestVirtualCallsChild":                        "BenchmarkLabrpcVirtual's child; makes its own bubble",
}

// TestSuiteInVirtualTime runs the package's tests again, each in a
// synctest bubble: labrpc works in virtual time as in real time.
func TestSuiteInVirtualTime(t *testing.T) {
	names := make([]string, 0, len(virtualSuite))
	for name := range virtualSuite {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		test := virtualSuite[name]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				if currentBubble() == 0 {
					t.Fatal("not in a bubble")
				}
				test(t)
			})
		})
	}
}

// TestEveryTestIsInTheVirtualSuiteOrExcused keeps virtualSuite complete:
// a new test must run in virtual time too, or say why not.
func TestEveryTestIsInTheVirtualSuiteOrExcused(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files (%v)", err)
	}
	fset := token.NewFileSet()
	seen := 0
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			seen++
			name := fn.Name.Name
			_, in := virtualSuite[name]
			_, out := notVirtual[name]
			if in == out {
				t.Errorf("%s (%s): in virtualSuite %v, excused %v; want exactly one", name, file, in, out)
			}
		}
	}
	if seen != len(virtualSuite)+len(notVirtual) {
		t.Errorf("%d tests in the sources, %d listed", seen, len(virtualSuite)+len(notVirtual))
	}
}

// A loop bounded by elapsed time ends in virtual time only because
// messages take time: with 1 ms per message, a call takes 2 ms, so exactly
// 500 calls fit in a second.
func TestLatencyBoundsTimeLoopsInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 50)
		e := f.end("e")
		f.net.SetLatency(time.Millisecond)
		start := time.Now()
		calls := 0
		for time.Since(start) < time.Second {
			var n int
			if !e.Call("Echo.Double", calls, &n) || n != 2*calls {
				t.Fatalf("call %d failed", calls)
			}
			calls++
		}
		if calls != 500 {
			t.Errorf("%d calls in a virtual second, want 500", calls)
		}
		// A disconnected call takes at least the latency too.
		f.net.Enable("e", false)
		f.net.SetLatency(time.Hour)
		start = time.Now()
		var n int
		e.Call("Echo.Double", 1, &n)
		if d := time.Since(start); d != time.Hour {
			t.Errorf("disconnected call took %v, want the latency, 1h", d)
		}
	})
}

func TestLabtestRunSetsLatencyAndRegistersNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		end := labhook.Begin(&labhook.Run{Virtual: true, Latency: 5 * time.Millisecond})
		defer end()
		run := labhook.Current()
		f := newFixture(t, 51)
		e := f.end("e")
		start := time.Now()
		var n int
		if !e.Call("Echo.Double", 1, &n) {
			t.Fatal("call failed")
		}
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Errorf("call took %v, want request and reply latency, 10ms", d)
		}
		nets := run.Networks()
		if len(nets) != 1 || nets[0] != labhook.Network(f.net) {
			t.Fatalf("registered networks %v, want the fixture's", nets)
		}
		var b strings.Builder
		if err := nets[0].WriteTimeline(&b); err != nil || !strings.Contains(b.String(), `class="delivered"`) {
			t.Errorf("timeline through labhook: %v\n%s", err, b.String())
		}
	})
	if labhook.Current() != nil {
		t.Error("run still current")
	}
	net := MakeNetworkSeed(1) // outside a run: no latency, no trace
	defer net.Cleanup()
	if net.latency != 0 || net.trace.on.Load() {
		t.Errorf("outside a run: latency %v, trace on %v", net.latency, net.trace.on.Load())
	}
}

// recoverMessage runs fn and returns what it panicked with, or "".
func recoverMessage(fn func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg, _ = p.(string)
			if msg == "" {
				msg = "non-string panic"
			}
		}
	}()
	fn()
	return ""
}

func TestNetworkMadeOutsideABubbleFailsFastInside(t *testing.T) {
	f := newFixture(t, 52)
	e := f.end("e")
	synctest.Test(t, func(t *testing.T) {
		for what, fn := range map[string]func(){
			"call":    func() { var n int; e.Call("Echo.Double", 1, &n) },
			"enable":  func() { f.net.Enable("e", false) },
			"cleanup": func() { f.net.Cleanup() },
		} {
			msg := recoverMessage(fn)
			if !strings.Contains(msg, "inside a synctest bubble on a network made outside it") {
				t.Errorf("%s: panic %q", what, msg)
			}
		}
	})
	var n int
	if !e.Call("Echo.Double", 1, &n) || n != 2 {
		t.Error("the network stopped working outside after the refused uses")
	}
}

func TestNetworkMadeInsideABubbleFailsFastOutside(t *testing.T) {
	var net *Network
	var e *ClientEnd
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 53)
		net, e = f.net, f.end("e")
		var n int
		if !e.Call("Echo.Double", 1, &n) {
			t.Error("call inside failed")
		}
	}) // the fixture's cleanup ran inside
	for what, fn := range map[string]func(){
		"call":    func() { var n int; e.Call("Echo.Double", 1, &n) },
		"connect": func() { net.Connect("e", "t") },
		"cleanup": func() { net.Cleanup() },
	} {
		msg := recoverMessage(fn)
		if !strings.Contains(msg, "outside the synctest bubble the network was made in") {
			t.Errorf("%s: panic %q", what, msg)
		}
	}
}

func TestBubbleIDReadsTheStackHeader(t *testing.T) {
	if id := bubbleID(); id != 0 {
		t.Errorf("outside: bubble %d", id)
	}
	var a, b uint64
	synctest.Test(t, func(t *testing.T) { a = bubbleID() })
	synctest.Test(t, func(t *testing.T) { b = bubbleID() })
	if a == 0 || b == 0 || a == b {
		t.Errorf("bubbles %d and %d: want two distinct non-zero ids", a, b)
	}
}
