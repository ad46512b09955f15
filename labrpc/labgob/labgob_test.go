package labgob_test

import (
	"bytes"
	"errors"
	"log"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc/labgob"
)

// watch collects warnings and log output for the rest of the test.
type watch struct {
	mu       sync.Mutex // protects following
	warnings []string
	log      bytes.Buffer
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(p)
}

func (w *watch) seen() (warnings []string, logged string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings...), w.log.String()
}

func newWatch(t *testing.T) *watch {
	w := &watch{}
	labgob.OnWarning(func(m string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.warnings = append(w.warnings, m)
	})
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(w)
	log.SetFlags(0)
	t.Cleanup(func() {
		labgob.OnWarning(nil)
		labgob.Strict(false)
		log.SetOutput(prev)
		log.SetFlags(flags)
	})
	return w
}

type Entry struct {
	Term    int
	Command interface{}
}

type AppendArgs struct {
	Term    int
	Entries []Entry
	When    time.Time // has unexported fields, but gob uses its GobEncode
}

func TestRoundTrip(t *testing.T) {
	w := newWatch(t)
	labgob.Register(Entry{})
	var buf bytes.Buffer
	enc := labgob.NewEncoder(&buf)
	in := AppendArgs{Term: 3, Entries: []Entry{{1, "x"}, {2, 7}}, When: time.Unix(100, 0)}
	if err := enc.Encode(in); err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeValue(reflect.ValueOf(42)); err != nil {
		t.Fatal(err)
	}
	dec := labgob.NewDecoder(&buf)
	var out AppendArgs
	var n int
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&n); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Entries, out.Entries) || out.Term != 3 || !out.When.Equal(in.When) || n != 42 {
		t.Errorf("decoded %+v, %d", out, n)
	}
	if warnings, _ := w.seen(); len(warnings) != 0 {
		t.Errorf("warnings for a clean type: %q", warnings)
	}
}

var lowerRuns atomic.Int32

type LowerVote struct {
	Term        int
	voteGranted bool
}

func TestLowerCaseFieldWarnsOnce(t *testing.T) {
	w := newWatch(t)
	for i := 0; i < 3; i++ {
		var buf bytes.Buffer
		if err := labgob.NewEncoder(&buf).Encode(LowerVote{Term: 1, voteGranted: true}); err != nil {
			t.Fatal(err)
		}
	}
	warnings, logged := w.seen()
	if len(warnings) != 3 {
		t.Errorf("handler saw %d warnings for 3 encodes, want 3", len(warnings))
	}
	if len(warnings) > 0 && (!strings.Contains(warnings[0], "voteGranted") || !strings.Contains(warnings[0], "won't be sent")) {
		t.Errorf("warning %q", warnings[0])
	}
	// Logged once per process: with -count=N only the first run logs.
	want := 0
	if lowerRuns.Add(1) == 1 {
		want = 1
	}
	if c := strings.Count(logged, "voteGranted"); c != want {
		t.Errorf("warning logged %d times, want %d:\n%s", c, want, logged)
	}
}

type Nested struct {
	Inner []map[string]*struct{ hidden int }
}

func TestLowerCaseFieldDeepInType(t *testing.T) {
	w := newWatch(t)
	var buf bytes.Buffer
	_ = labgob.NewEncoder(&buf).Encode(Nested{})
	if warnings, _ := w.seen(); len(warnings) != 1 || !strings.Contains(warnings[0], "hidden") {
		t.Errorf("warnings %q, want one about hidden", warnings)
	}
}

type Reply struct {
	Term int
	OK   bool
}

func TestDecodeIntoNonDefault(t *testing.T) {
	w := newWatch(t)
	var buf bytes.Buffer
	enc := labgob.NewEncoder(&buf)
	_ = enc.Encode(Reply{Term: 5})
	_ = enc.Encode(Reply{Term: 6})
	dec := labgob.NewDecoder(&buf)
	var fresh Reply
	if err := dec.Decode(&fresh); err != nil {
		t.Fatal(err)
	}
	if warnings, _ := w.seen(); len(warnings) != 0 {
		t.Fatalf("warning for a zero target: %q", warnings)
	}
	stale := Reply{OK: true}
	if err := dec.Decode(&stale); err != nil {
		t.Fatal(err)
	}
	if !stale.OK {
		t.Error("gob changed a field that was not sent; the warning's premise is wrong")
	}
	warnings, _ := w.seen()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "Reply.OK") || !strings.Contains(warnings[0], "may not work") {
		t.Errorf("warnings %q", warnings)
	}
}

type StrictLower struct {
	X int
	//lint:ignore U1000 the unexported field is what strict mode must catch
	y int
}

func TestStrict(t *testing.T) {
	newWatch(t)
	labgob.Strict(true)
	var buf bytes.Buffer
	if err := labgob.NewEncoder(&buf).Encode(StrictLower{X: 1}); !errors.Is(err, labgob.ErrWarning) {
		t.Errorf("Encode in strict mode: %v, want ErrWarning", err)
	}
	if buf.Len() != 0 {
		t.Error("strict mode encoded the value anyway")
	}
	if err := labgob.NewEncoder(&buf).EncodeValue(reflect.ValueOf(StrictLower{})); !errors.Is(err, labgob.ErrWarning) {
		t.Errorf("EncodeValue in strict mode: %v", err)
	}
	_ = labgob.NewEncoder(&buf).Encode(Reply{Term: 1})
	r := Reply{Term: 9}
	if err := labgob.NewDecoder(&buf).Decode(&r); !errors.Is(err, labgob.ErrWarning) {
		t.Errorf("Decode into a non-default value in strict mode: %v", err)
	}
	labgob.Strict(false)
	if err := labgob.NewEncoder(&buf).Encode(StrictLower{X: 1}); err != nil {
		t.Errorf("Encode after Strict(false): %v", err)
	}
}

type Holder struct {
	Log   []int
	Index map[string]int
	Ptr   *int
	Inner struct{ A int }
	Any   interface{}
	Term  int
	Name  string
	Ratio float64
}

// decodeInto encodes a zero Holder and decodes it into target, returning
// the warnings seen.
func decodeInto(t *testing.T, target any) []string {
	t.Helper()
	w := newWatch(t)
	var buf bytes.Buffer
	if err := labgob.NewEncoder(&buf).Encode(Holder{}); err != nil {
		t.Fatal(err)
	}
	if err := labgob.NewDecoder(&buf).Decode(target); err != nil {
		t.Fatal(err)
	}
	warnings, _ := w.seen()
	return warnings
}

func TestDecodeWarnsOnlyUnderClassicConditions(t *testing.T) {
	five := 5
	tests := []struct {
		name   string
		target Holder
		warn   string // "" for no warning
	}{
		{"zero", Holder{}, ""},
		{"empty non-nil slice", Holder{Log: []int{}}, ""},
		{"slice with entries", Holder{Log: []int{1, 2}}, ""},
		{"non-nil map", Holder{Index: map[string]int{"a": 1}}, ""},
		{"pointer to a non-zero int, below the depth looked at", Holder{Ptr: &five}, ""},
		{"nested struct's field, below the depth looked at", Holder{Inner: struct{ A int }{A: 1}}, ""},
		{"interface", Holder{Any: 3}, ""},
		{"int field", Holder{Term: 2}, "Holder.Term"},
		{"string field", Holder{Name: "x"}, "Holder.Name"},
		{"float field", Holder{Ratio: 0.5}, "Holder.Ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			warnings := decodeInto(t, &target)
			switch {
			case tt.warn == "" && len(warnings) != 0:
				t.Errorf("warned: %q", warnings)
			case tt.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.warn)):
				t.Errorf("warnings %q, want one naming %s", warnings, tt.warn)
			}
		})
	}
}

func TestDecodeIntoNonZeroScalarWarns(t *testing.T) {
	w := newWatch(t)
	var buf bytes.Buffer
	_ = labgob.NewEncoder(&buf).Encode(7)
	x := 5
	if err := labgob.NewDecoder(&buf).Decode(&x); err != nil {
		t.Fatal(err)
	}
	if warnings, _ := w.seen(); len(warnings) != 1 || !strings.Contains(warnings[0], "int is not zero") {
		t.Errorf("warnings %q", warnings)
	}
}
