package main

import (
	"context"
	"sync"
	"time"

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
	outNoOutcome     = "no_outcome"     // events republish: no outcome stored for the command id
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
			r.Outcome, r.SimID, r.Status = outCreated, ev.SimID(), 201
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

// count is how many rows have outcome o.
func (t *tracker) count(o string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.rows {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

func (t *tracker) rowCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rows)
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
