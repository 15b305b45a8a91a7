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
