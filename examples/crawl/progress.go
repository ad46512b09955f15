package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows how far a crawl got: a bar redrawn in place on a terminal,
// a plain line every second otherwise. A nil *progress shows nothing.
type progress struct {
	w        io.Writer
	tty      bool
	total    int           // URLs expected, 0 if unknown
	interval time.Duration // between updates

	mu    sync.Mutex // protects drawn
	drawn bool       // a bar is on the screen
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, interval: time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.interval = true, 100*time.Millisecond
		}
	}
	return p
}

const barWidth = 30

// update shows done URLs of total; pending, if not negative, is how many are
// queued or being fetched.
func (p *progress) update(done, pending int, elapsed time.Duration) {
	if p == nil {
		return
	}
	count := fmt.Sprintf("%d pages", done)
	if p.total > 0 {
		count = fmt.Sprintf("%d/%d pages", done, p.total)
	}
	if pending >= 0 {
		count += fmt.Sprintf(", %d pending", pending)
	}
	elapsed = elapsed.Round(100 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		fmt.Fprintf(p.w, "progress: %s, %v\n", count, elapsed)
		return
	}
	bar := ""
	if p.total > 0 {
		filled := min(barWidth*done/p.total, barWidth)
		bar = "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "] "
	}
	fmt.Fprintf(p.w, "\r%s%s  %v\x1b[K", bar, count, elapsed)
	p.drawn = true
}

// finish clears the bar, so that the summary starts on a clean line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}
