//go:build linux

package hostile

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"time"
)

// sample is the process's state at one moment. The attacker and the
// server share the process, so each figure is taken with the legitimate
// clients paused and the attacker's own part known (see scenario).
type sample struct {
	heap       int64 // HeapAlloc after GC: live heap objects
	heapInuse  int64 // HeapInuse after GC: spans holding them
	stacks     int64 // StackInuse after GC (a deep decode grows its goroutine's stack)
	allocs     uint64
	goroutines int
	fds        int   // open descriptors, -1 if they could not be counted
	rss        int64 // resident set, bytes
}

// allocsMetric is the cumulative count of bytes allocated on the heap.
const allocsMetric = "/gc/heap/allocs:bytes"

func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: allocsMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleBefore measures the process before an attack, sampleAfter after
// it. The heap's allocation count is exact only after a GC and
// ReadMemStats (each P's cache of small objects is counted when it is
// flushed), and the measurement itself allocates (reading /proc): so the
// count is the last thing read before the attack and the first after it.
func sampleBefore() sample {
	var s sample
	s.fds, s.rss = countFDs(), statusBytes("VmRSS:")
	resetPeakRSS()
	s.goroutines = runtime.NumGoroutine()
	s.readHeap()
	return s
}

func sampleAfter() sample {
	var s sample
	s.goroutines = runtime.NumGoroutine()
	s.readHeap()
	s.fds, s.rss = countFDs(), statusBytes("VmRSS:")
	return s
}

// readHeap collects garbage and reads the heap, the allocation count last.
func (s *sample) readHeap() {
	runtime.GC()
	runtime.GC() // the first may leave objects finalizers kept
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heap, s.heapInuse, s.stacks = int64(ms.HeapAlloc), int64(ms.HeapInuse), int64(ms.StackInuse)
	s.allocs = heapAllocated()
}

// countFDs counts the process's open descriptors, -1 when it cannot (as
// when the process is out of them).
func countFDs() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1 // less the directory itself
}

// statusBytes reads a "kB" line of /proc/self/status, in bytes; 0 if absent.
func statusBytes(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if len(line) > len(key) && line[:len(key)] == key {
			f := bytes.Fields([]byte(line[len(key):]))
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseInt(string(f[0]), 10, 64)
			return n << 10
		}
	}
	return 0
}

// resetPeakRSS starts a new peak: the kernel's high-water mark of resident
// memory (VmHWM) goes back to the current RSS.
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func peakRSS() int64 { return statusBytes("VmHWM:") }

// quiesce waits until the process stops allocating and starting or ending
// goroutines (the server has done what the attack made it do, and waits),
// for at most limit.
func quiesce(limit time.Duration) {
	const (
		step   = 25 * time.Millisecond
		calm   = 4        // consecutive quiet steps
		noise  = 16 << 10 // bytes a step may allocate and still be quiet
		settle = 50 * time.Millisecond
	)
	time.Sleep(settle)
	deadline := time.Now().Add(limit)
	last, lastG, quiet := heapAllocated(), runtime.NumGoroutine(), 0
	for quiet < calm && time.Now().Before(deadline) {
		time.Sleep(step)
		now, g := heapAllocated(), runtime.NumGoroutine()
		if now-last <= noise && g == lastG {
			quiet++
		} else {
			quiet = 0
		}
		last, lastG = now, g
	}
}
