package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"simworker/client"
	"simworker/domain"
)

// Outcome values of a report row.
const (
	outCreated       = "created"
	outRejected      = "rejected"
	outInvalidLine   = "invalid_line"   // not published: not a command envelope
	outPublishFailed = "publish_failed" // JetStream did not accept it
	outMissing       = "missing"        // published, but no outcome arrived in time
)

// row is one line of a report.
type row struct {
	Ref       int64  `json:"-"` // line number, or stream sequence for a replay
	CommandID string `json:"command_id"`
	Outcome   string `json:"outcome"`
	SimID     string `json:"sim_id,omitempty"`
	Status    int    `json:"status,omitempty"`
	Code      string `json:"code,omitempty"`
	Reason    string `json:"reason,omitempty"`
	EventID   string `json:"event_id,omitempty"`
}

// tracker matches outcome events to the rows that wait for them: by command
// id, or by event id for bodies without one.
type tracker struct {
	mu       sync.Mutex
	rows     []*row
	byCmd    map[string][]*row
	byEvent  map[string][]*row
	waiting  int
	progress chan struct{}
}

func newTracker() *tracker {
	return &tracker{byCmd: map[string][]*row{}, byEvent: map[string][]*row{}, progress: make(chan struct{}, 1)}
}

// add records a row; a row with an outcome already (invalid line) waits for nothing.
func (t *tracker) add(r *row, eventID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, r)
	if r.Outcome != "" {
		return
	}
	t.waiting++
	if r.CommandID != "" {
		t.byCmd[r.CommandID] = append(t.byCmd[r.CommandID], r)
	} else {
		t.byEvent[eventID] = append(t.byEvent[eventID], r)
	}
}

// fail settles a row whose publish failed: one still waiting for its
// outcome, or (force) any row.
func (t *tracker) fail(r *row, why string, force bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Outcome == "" {
		t.waiting--
	} else if !force {
		return
	}
	r.Outcome, r.Reason = outPublishFailed, why
}

func (t *tracker) observe(ev client.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := t.byCmd[ev.CommandID]
	if ev.CommandID == "" {
		rows = t.byEvent[ev.ID]
	}
	for _, r := range rows {
		if r.Outcome != "" {
			continue
		}
		r.EventID = ev.ID
		if ev.Type == domain.TypeCreated {
			r.Outcome, r.SimID = outCreated, ev.SimID()
		} else {
			rej := ev.Rejection()
			r.Outcome, r.Status, r.Code, r.Reason = outRejected, rej.Status, string(rej.Code), rej.Message
		}
		t.waiting--
	}
	select {
	case t.progress <- struct{}{}:
	default:
	}
}

func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waiting
}

// wait blocks until no row waits, or no outcome arrived for idle.
func (t *tracker) wait(ctx context.Context, idle time.Duration) {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for t.pending() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-t.progress:
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(idle)
		}
	}
}

// finish marks rows still waiting as missing.
func (t *tracker) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.rows {
		if r.Outcome == "" {
			r.Outcome, r.Reason = outMissing, "no outcome arrived: safe to publish again"
		}
	}
	t.waiting = 0
}

// writeReport writes the rows as CSV or NDJSON; refName names the first column.
func (t *tracker) writeReport(w io.Writer, format, refName string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{refName, "command_id", "outcome", "sim_id", "status", "code", "reason", "event_id"})
		for _, r := range t.rows {
			status := ""
			if r.Status != 0 {
				status = strconv.Itoa(r.Status)
			}
			_ = cw.Write([]string{strconv.FormatInt(r.Ref, 10), r.CommandID, r.Outcome, r.SimID, status, r.Code, r.Reason, r.EventID})
		}
		cw.Flush()
		return cw.Error()
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, r := range t.rows {
			m := map[string]any{refName: r.Ref}
			b, _ := json.Marshal(r)
			_ = json.Unmarshal(b, &m)
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("report format %q: use csv or ndjson", format)
}

// summary counts rows by outcome and code, e.g.
// "rows 10: created 7, rejected 2 (already_exists 1, invalid_argument 1), invalid_line 1".
func (t *tracker) summary() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byOutcome := map[string]int{}
	byCode := map[string]int{}
	for _, r := range t.rows {
		byOutcome[r.Outcome]++
		if r.Code != "" {
			byCode[r.Code]++
		}
	}
	parts := []string{}
	for _, o := range []string{outCreated, outRejected, outInvalidLine, outPublishFailed, outMissing, "not_found", "would_replay"} {
		if byOutcome[o] == 0 && o != outCreated && o != outRejected {
			continue
		}
		p := fmt.Sprintf("%s %d", o, byOutcome[o])
		if o == outRejected && len(byCode) > 0 {
			codes := make([]string, 0, len(byCode))
			for c := range byCode {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			var cs []string
			for _, c := range codes {
				cs = append(cs, fmt.Sprintf("%s %d", c, byCode[c]))
			}
			p += " (" + strings.Join(cs, ", ") + ")"
		}
		parts = append(parts, p)
	}
	complete := byOutcome[outInvalidLine]+byOutcome[outPublishFailed]+byOutcome[outMissing] == 0
	return fmt.Sprintf("rows %d: %s", len(t.rows), strings.Join(parts, ", ")), complete
}

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
			_ = p.bar.Finish()
			fmt.Fprintln(p.out)
			return
		}
		close(p.done)
		p.ticker.Wait()
		p.line()
	})
}

// publisher publishes asynchronously with a bounded number in flight and
// settles each row whose publish JetStream refused.
type publisher struct {
	js       jetstream.JetStream
	t        *tracker
	inflight chan struct{}
	wg       sync.WaitGroup
	prog     *progress
}

func newPublisher(js jetstream.JetStream, t *tracker, maxInflight int, prog *progress) *publisher {
	return &publisher{js: js, t: t, inflight: make(chan struct{}, maxInflight), prog: prog}
}

func (p *publisher) publish(ctx context.Context, r *row, msg *nats.Msg) {
	p.send(ctx, r, false, func() (jetstream.PubAckFuture, error) {
		return p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(client.CommandsStream))
	})
}

// publishOutcome re-emits a stored outcome; a refusal turns its row into
// publish_failed.
func (p *publisher) publishOutcome(ctx context.Context, r *row, o domain.Outcome) {
	p.send(ctx, r, true, func() (jetstream.PubAckFuture, error) { return client.PublishOutcome(p.js, o) })
}

// send publishes with at most maxInflight awaiting their acknowledgement and
// settles the row when JetStream refuses (force: even a row that has its
// outcome already).
func (p *publisher) send(ctx context.Context, r *row, force bool, publish func() (jetstream.PubAckFuture, error)) {
	select {
	case p.inflight <- struct{}{}:
	case <-ctx.Done():
		p.t.fail(r, "interrupted", force)
		return
	}
	f, err := publish()
	if err != nil {
		<-p.inflight
		p.t.fail(r, err.Error(), force)
		p.prog.add(1)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.inflight }()
		select {
		case <-f.Ok():
		case err := <-f.Err():
			p.t.fail(r, err.Error(), force)
		case <-ctx.Done():
			p.t.fail(r, "interrupted", force)
		}
		p.prog.add(1)
	}()
}

func (p *publisher) wait() { p.wg.Wait() }
