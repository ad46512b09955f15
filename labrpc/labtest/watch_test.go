package labtest

import (
	"testing"
	"time"
)

func TestClockWatchFlagsOnlyAVirtualClockSlowerThanRealOverAWindow(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name    string
		samples []clockSample // real, virtual elapsed, every 100 ms of real time
		want    []bool
	}{
		{"sleeping test: virtual far ahead", ramp(15, 100*ms, 10*time.Second), repeatBool(false, 15)},
		{"stalled from the start: flagged once a window has passed", ramp(15, 100*ms, 0),
			append(repeatBool(false, 10), repeatBool(true, 5)...)},
		{"half speed: flagged after a window", ramp(12, 100*ms, 50*ms),
			append(repeatBool(false, 10), true, true)},
		{"exactly real speed is not slower", ramp(12, 100*ms, 100*ms), repeatBool(false, 12)},
		{"fast, then stalled: flagged a window after the stall",
			append(ramp(5, 100*ms, time.Second), flat(12, 500*ms, 100*ms, 5*time.Second)...),
			append(repeatBool(false, 15), true, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := clockWatch{window: time.Second}
			for i, s := range tt.samples {
				if got := w.observe(s.real, s.virtual); got != tt.want[i] {
					t.Fatalf("sample %d (real %v, virtual %v): slow = %v, want %v", i, s.real, s.virtual, got, tt.want[i])
				}
			}
		})
	}
}

// ramp returns n samples 0, step, 2·step… of real time with virtual time
// growing by vstep a sample.
func ramp(n int, step, vstep time.Duration) []clockSample {
	s := make([]clockSample, n)
	for i := range s {
		s[i] = clockSample{time.Duration(i) * step, time.Duration(i) * vstep}
	}
	return s
}

// flat returns n samples continuing from real time start with a virtual time
// that no longer moves from v.
func flat(n int, start, step, v time.Duration) []clockSample {
	s := make([]clockSample, n)
	for i := range s {
		s[i] = clockSample{start + time.Duration(i)*step, v}
	}
	return s
}

func repeatBool(b bool, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = b
	}
	return out
}
