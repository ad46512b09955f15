package labtest

import "time"

// clockWatch decides, from samples of the real and the virtual time a test
// has taken, whether its virtual clock runs slower than the real one over
// the last window of real time. A test that sleeps gains virtual time much
// faster than real time; one that computes or spins does not, and one
// stalled on a mutex gains none.
type clockWatch struct {
	window  time.Duration // real time over which the clocks are compared
	samples []clockSample // oldest first; the first one within a window of the newest is kept
}

type clockSample struct{ real, virtual time.Duration }

// observe records that the test has taken real and virtual time so far and
// reports whether, over the last window of real time, the virtual clock
// advanced by less than the real one.
func (w *clockWatch) observe(real, virtual time.Duration) (slow bool) {
	w.samples = append(w.samples, clockSample{real, virtual})
	// Keep the newest sample at least a window old, and everything after it.
	i := 0
	for i+1 < len(w.samples) && real-w.samples[i+1].real >= w.window {
		i++
	}
	w.samples = w.samples[i:]
	old := w.samples[0]
	if real-old.real < w.window {
		return false
	}
	return virtual-old.virtual < real-old.real
}
