package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

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
			_ = cw.Write([]string{strconv.FormatInt(r.Ref, 10), safe(r.CommandID), r.Outcome, safe(r.SimID), status, safe(r.Code),
				safe(r.Reason), safe(r.EventID)})
		}
		cw.Flush()
		return cw.Error()
	case "ndjson":
		for _, r := range t.rows {
			m := map[string]any{refName: r.Ref}
			b, _ := json.Marshal(r)
			_ = json.Unmarshal(b, &m)
			line, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if _, err := w.Write(append(safeJSON(line), '\n')); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("report format %q: use csv or ndjson", format)
}

// summary counts rows by outcome and code, e.g. "rows 10: created 3,
// rejected 5 (already_exists 1, ...), invalid_line 1, repeated 1": a row
// whose command id an earlier row had is counted apart, as repeated (it got
// that row's outcome again and decided nothing). incomplete says which rows
// got no outcome, and why ("" when every row has one).
func (t *tracker) summary() (sum, incomplete string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byOutcome := map[string]int{}
	byCode := map[string]int{}
	seen := map[string]bool{}
	repeated := 0
	for _, r := range t.rows {
		if r.CommandID != "" && seen[r.CommandID] {
			repeated++
			continue
		}
		seen[r.CommandID] = r.CommandID != ""
		byOutcome[r.Outcome]++
		if r.Code != "" && r.Outcome == outRejected {
			byCode[r.Code]++
		}
	}
	parts := []string{}
	for _, o := range []string{outCreated, outRejected, outInvalidLine, outPublishFailed, outMissing, outNoOutcome, "would_replay"} {
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
				cs = append(cs, fmt.Sprintf("%s %d", safe(c), byCode[c]))
			}
			p += " (" + strings.Join(cs, ", ") + ")"
		}
		parts = append(parts, p)
	}
	if repeated > 0 {
		parts = append(parts, fmt.Sprintf("repeated %d (a command id of an earlier line: its outcome again)", repeated))
	}
	var why []string
	for _, w := range []struct {
		outcome, text string
	}{{outInvalidLine, "not a command envelope (invalid_line)"}, {outPublishFailed, "not taken by JetStream (publish_failed: publish again)"},
		{outMissing, "published, no outcome in time (missing: publishing again is safe)"},
		{outNoOutcome, "without a stored outcome (no_outcome: not decided yet, or never published)"}} {
		if n := byOutcome[w.outcome]; n > 0 {
			why = append(why, fmt.Sprintf("%d %s", n, w.text))
		}
	}
	return fmt.Sprintf("rows %d: %s", len(t.rows), strings.Join(parts, ", ")), strings.Join(why, "; ")
}

// published is the summary of a run without --wait: what went out, and the
// lines that did not.
func (t *tracker) published() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out, invalid, failed := 0, 0, 0
	for _, r := range t.rows {
		switch r.Outcome {
		case outInvalidLine:
			invalid++
		case outPublishFailed:
			failed++
		default:
			out++
		}
	}
	s := fmt.Sprintf("published %d of %d lines", out, len(t.rows))
	if invalid > 0 {
		s += fmt.Sprintf(", %d not a command envelope (invalid_line)", invalid)
	}
	if failed > 0 {
		s += fmt.Sprintf(", %d not taken by JetStream (publish_failed)", failed)
	}
	return s + "; run with --wait for their outcomes"
}
