package labtest

import (
	"sync"
	"testing"
	"time"
)

func TestSmokeSleep(t *testing.T) {
	Virtual(t, func(t *testing.T) {
		start := time.Now()
		time.Sleep(30 * time.Second)
		t.Logf("slept %v", time.Since(start))
		ch := make(chan int)
		go func() { <-ch }()
	})
}

func TestSmokeMutex(t *testing.T) {
	n := 0
	Virtual(t, func(t *testing.T) {
		n++
		var mu sync.Mutex
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); mu.Lock(); time.Sleep(50 * time.Millisecond); mu.Unlock() }()
		go func() { defer wg.Done(); time.Sleep(time.Millisecond); mu.Lock(); mu.Unlock() }()
		wg.Wait()
	})
	t.Logf("runs %d", n)
}

func TestSmokeSpin(t *testing.T) {
	Virtual(t, func(t *testing.T) {
		start := time.Now()
		for time.Since(start) < time.Second {
		}
	})
}
