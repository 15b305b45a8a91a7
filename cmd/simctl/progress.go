package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a run is: a bar on a terminal, a plain line every
// few seconds otherwise.
type progress struct {
	bar       *progressbar.ProgressBar
	out       io.Writer
	what      string
	n, total  int64
	mu        sync.Mutex
	done      chan struct{}
	ticker    sync.WaitGroup
	finalized sync.Once
}

func newProgress(out io.Writer, total int64, what string) *progress {
	p := &progress{out: out, total: total, what: what, done: make(chan struct{})}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(out), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetItsString("msg"))
		return p
	}
	p.ticker.Add(1)
	go func() {
		defer p.ticker.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.line()
			}
		}
	}()
	return p
}

func (p *progress) line() {
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	if p.total > 0 {
		fmt.Fprintf(p.out, "%s: %d/%d\n", p.what, n, p.total)
	} else {
		fmt.Fprintf(p.out, "%s: %d\n", p.what, n)
	}
}

func (p *progress) add(n int) {
	p.mu.Lock()
	p.n += int64(n)
	p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Add(n)
	}
}

func (p *progress) finish() {
	p.finalized.Do(func() {
		if p.bar != nil {
			// Exit, not Finish: Finish would fill the bar to the total, counting
			// lines that were never published; the bar keeps the true count,
			// as the plain line does.
			_ = p.bar.Exit()
			fmt.Fprintln(p.out)
			return
		}
		close(p.done)
		p.ticker.Wait()
		p.line()
	})
}
