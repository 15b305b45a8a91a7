package main

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
)

// hostile is a status of 30 characters (valid) that, printed raw, forges a
// second line, clears the screen and retitles the terminal; and a command
// id with a C1 CSI and a right-to-left override.
const (
	hostileStatus = "x\nFORGED rejected \u001b[2J\u001b]0;pwn\u0007"
	hostileID     = "c-\u009b31m\u202eevil"
)

// clean fails the test for any control or bidirectional control character
// in out other than the newline that ends each line.
func clean(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
			t.Fatalf("%s prints %U raw at byte %d:\n%q", what, r, i, out)
		}
	}
}

func TestUserStringsAreEscaped(t *testing.T) {
	if got := safe(hostileStatus); got != `x\nFORGED rejected \x1b[2J\x1b]0;pwn\a` {
		t.Fatalf("safe: %s", got)
	}
	if got := safe("ok é \xff"); got != `ok é \xff` {
		t.Fatalf("safe: %s", got)
	}
	w := newWorld(t)
	w.startWorker()
	body := func(id, iccid, status string) string {
		b, _ := json.Marshal(map[string]any{"command_id": id, "actor_id": "u-alice",
			"sim": map[string]any{"device_id": "d-1", "iccid": iccid, "status": status}})
		return string(b)
	}
	file := writeFile(t, body(hostileID, "8944500102198304826", hostileStatus), body("c-2", "12", "x"))
	for _, format := range []string{"csv", "ndjson"} {
		out, errOut, err := simctl(t, "publish", "--wait", "--format", format, file)
		if err != nil {
			t.Fatalf("publish: %v\n%s", err, errOut)
		}
		clean(t, "the "+format+" report", out)
		clean(t, "the summary", errOut)
		if n := strings.Count(out, "\n"); format == "ndjson" && n != 2 || format == "csv" && n != 3 {
			t.Fatalf("the %s report has %d lines:\n%s", format, n, out)
		}
		if !strings.Contains(out, `c-\u009b31m\u202eevil`) {
			t.Fatalf("the %s report does not show the id escaped:\n%s", format, out)
		}
	}
	out, _, err := simctl(t, "tail", "--all", "--count", "2")
	if err != nil {
		t.Fatal(err)
	}
	clean(t, "tail", out)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.Contains(out, `status=x\nFORGED rejected \x1b[2J\x1b]0;pwn\a`) {
		t.Fatalf("tail:\n%s", out)
	}
	out, _, err = simctl(t, "tail", "--all", "--json", "--count", "2")
	if err != nil {
		t.Fatal(err)
	}
	clean(t, "tail --json", out)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			CommandID string `json:"commandid"`
			Data      struct {
				Status any `json:"status"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("tail --json prints no JSON: %v\n%s", err, line)
		}
		if ev.CommandID == hostileID && ev.Data.Status != hostileStatus {
			t.Fatalf("tail --json changed the event: %q", ev.Data.Status)
		}
	}
}
