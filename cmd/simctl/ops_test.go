package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/internal/devstack"
	"simworker/repo/repotest"
)

type world struct {
	t     *testing.T
	pool  *pgxpool.Pool
	dbURL string
	ns    *devstack.NATS
	js    jetstream.JetStream
	nc    *nats.Conn

	mu        sync.Mutex
	published []string // event ids of every publish on sim.events.> (core: re-publishes too)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	pool, dbURL := repotest.NewDB(t)
	repotest.LoadDemo(t, pool)
	ns, nc, js := consumertest.NATS(t, client.StreamConfig{})
	w := &world{t: t, pool: pool, dbURL: dbURL, ns: ns, js: js, nc: nc}
	if _, err := nc.Subscribe("sim.events.>", func(m *nats.Msg) {
		w.mu.Lock()
		w.published = append(w.published, m.Header.Get(jetstream.MsgIDHeader))
		w.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_URL", ns.URL)
	t.Setenv("DATABASE_URL", dbURL)
	return w
}

func (w *world) publishCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.published)
}

// startWorker runs the worker in-process until the test ends.
func (w *world) startWorker() {
	w.t.Helper()
	consumertest.Worker(w.t, w.ns.URL, w.dbURL, consumer.Config{})
}

// simctl runs a simctl command and returns stdout, stderr and the error.
func simctl(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := dispatch(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func readCSV(t *testing.T, text string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("report is not CSV: %v\n%s", err, text)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		rows = append(rows, m)
	}
	return rows
}

func writeFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "commands.ndjson")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	cmdOK    = `{"command_id":"c-1","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944500102198304826"}}`
	cmdBad   = `{"command_id":"c-2","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"12"}}`
	cmdNoAut = `{"command_id":"c-3","actor_id":"u-bob","sim":{"device_id":"d-1","iccid":"8944500102198304827"}}`
)

func TestPublishWaitReport(t *testing.T) {
	w := newWorld(t)
	w.startWorker()
	file := writeFile(t, cmdOK, cmdBad, "this is not an envelope", "", cmdOK, cmdNoAut)
	out, errOut, err := simctl(t, "publish", "--wait", "--format", "csv", file)
	if !errors.Is(err, errIncomplete) {
		t.Fatalf("err = %v (an invalid line must make the run incomplete)\n%s", err, errOut)
	}
	rows := readCSV(t, out)
	want := []struct{ line, id, outcome, code string }{
		{"1", "c-1", "created", ""},
		{"2", "c-2", "rejected", "invalid_argument"},
		{"3", "", "invalid_line", ""},
		{"5", "c-1", "created", ""},
		{"6", "c-3", "rejected", "unauthorized"},
	}
	if len(rows) != len(want) {
		t.Fatalf("report rows:\n%s", out)
	}
	for i, wr := range want {
		r := rows[i]
		if r["line"] != wr.line || r["command_id"] != wr.id || r["outcome"] != wr.outcome || r["code"] != wr.code {
			t.Fatalf("row %d = %v, want %+v", i, r, wr)
		}
	}
	if rows[0]["sim_id"] == "" || rows[0]["sim_id"] != rows[3]["sim_id"] || rows[0]["event_id"] != rows[3]["event_id"] {
		t.Fatalf("the same command twice must report one outcome: %v %v", rows[0], rows[3])
	}
	if !strings.Contains(errOut, "rows 5: created 1, rejected 2 (invalid_argument 1, unauthorized 1), invalid_line 1, repeated 1") ||
		!strings.Contains(err.Error(), "1 not a command envelope (invalid_line)") {
		t.Fatalf("summary: %s", errOut)
	}
	var n int
	_ = w.pool.QueryRow(context.Background(), `SELECT count(*) FROM sims`).Scan(&n)
	if n != 1 {
		t.Fatalf("sims = %d", n)
	}
}

func TestPublishReportsMissingOutcomes(t *testing.T) {
	w := newWorld(t)
	file := writeFile(t, cmdOK, cmdBad)
	// No worker yet: the outcomes never come.
	out, _, err := simctl(t, "publish", "--wait", "--wait-timeout", "1s", "--format", "ndjson", file)
	if !errors.Is(err, errIncomplete) {
		t.Fatalf("err = %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil || r["outcome"] != "missing" {
			t.Fatalf("ndjson row %q", l)
		}
	}
	// Publishing the same file again is safe: one outcome per command.
	w.startWorker()
	out, errOut, err := simctl(t, "publish", "--wait", file)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	rows := readCSV(t, out)
	if rows[0]["outcome"] != "created" || rows[1]["outcome"] != "rejected" {
		t.Fatalf("second run: %v", rows)
	}
}

func TestReplayRedeliversWithSameOutcomes(t *testing.T) {
	w := newWorld(t)
	w.startWorker()
	file := writeFile(t, cmdOK, cmdBad, cmdNoAut)
	first, _, err := simctl(t, "publish", "--wait", file)
	if err != nil {
		t.Fatal(err)
	}
	// A body without a command id, straight onto the stream.
	if _, err := w.js.Publish(context.Background(), client.CreateSubject, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	garbageEvent := client.PositionEventID(client.CommandsStream, 4)
	deadline := time.Now().Add(10 * time.Second)
	for w.publishCount() < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	before := w.publishCount()

	out, errOut, err := simctl(t, "replay", "--from-seq", "1", "--wait", "--wait-timeout", "10s")
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, errOut, out)
	}
	rows := readCSV(t, out)
	if len(rows) != 4 {
		t.Fatalf("replayed rows:\n%s", out)
	}
	orig := readCSV(t, first)
	for i := 0; i < 3; i++ {
		if rows[i]["event_id"] != orig[i]["event_id"] || rows[i]["outcome"] != orig[i]["outcome"] {
			t.Fatalf("replay of seq %s: %v, first run %v", rows[i]["seq"], rows[i], orig[i])
		}
	}
	if rows[3]["event_id"] != garbageEvent || rows[3]["outcome"] != "rejected" {
		t.Fatalf("replay of the garbage body: %v, want event %s", rows[3], garbageEvent)
	}
	// The worker really saw the copies: it re-published four outcomes, which
	// JetStream then de-duplicated.
	deadline = time.Now().Add(10 * time.Second)
	for w.publishCount() < before+4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := w.publishCount() - before; got < 4 {
		t.Fatalf("replay re-delivered %d of 4 commands", got)
	}
	ctx := context.Background()
	ev, _ := w.js.Stream(ctx, client.EventsStream)
	info, _ := ev.Info(ctx)
	if info.State.Msgs != 4 {
		t.Fatalf("SIM_EVENTS holds %d events, want 4", info.State.Msgs)
	}
	var n int
	_ = w.pool.QueryRow(ctx, `SELECT count(*) FROM sims`).Scan(&n)
	if n != 1 {
		t.Fatalf("sims = %d", n)
	}

	// A second replay of the same range is delivered again too.
	if _, _, err := simctl(t, "replay", "--from-seq", "1", "--to-seq", "2", "--wait"); err != nil {
		t.Fatal(err)
	}
}

func TestEventsRepublish(t *testing.T) {
	w := newWorld(t)
	w.startWorker()
	file := writeFile(t, cmdOK, cmdBad, cmdNoAut)
	first, _, err := simctl(t, "publish", "--wait", file)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The events stream loses its data, message ids included (a purge keeps
	// them for the duplicate window): it is lost and made again.
	if err := w.js.DeleteStream(ctx, client.EventsStream); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Setup(ctx, w.js, client.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	ev, err := w.js.Stream(ctx, client.EventsStream)
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, err := simctl(t, "events", "republish", "--since", "1h")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if rows := readCSV(t, out); len(rows) != 3 {
		t.Fatalf("republished:\n%s", out)
	}
	info, _ := ev.Info(ctx)
	if info.State.Msgs != 3 {
		t.Fatalf("SIM_EVENTS holds %d events after republish", info.State.Msgs)
	}
	want := map[string]bool{}
	for _, r := range readCSV(t, first) {
		want[r["event_id"]] = true
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := ev.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if !want[m.Header.Get(jetstream.MsgIDHeader)] {
			t.Fatalf("republished event id %s is not an original", m.Header.Get(jetstream.MsgIDHeader))
		}
	}

	// By command id, with one unknown.
	ids := writeFile(t, "c-2", cmdNoAut, "c-unknown", "this line is not a command envelope", "c-2")
	out, errOut, err = simctl(t, "events", "republish", "--commands", ids)
	if !errors.Is(err, errIncomplete) || !strings.Contains(err.Error(), "1 not a command envelope (invalid_line)") ||
		!strings.Contains(err.Error(), "1 without a stored outcome (no_outcome") {
		t.Fatalf("an unknown id and a line that is none: %v", err)
	}
	rows := readCSV(t, out)
	if len(rows) != 5 || rows[2]["outcome"] != "no_outcome" || rows[2]["command_id"] != "c-unknown" ||
		rows[3]["outcome"] != "invalid_line" || rows[3]["command_id"] != "" ||
		rows[4]["command_id"] != "c-2" || rows[4]["event_id"] != rows[0]["event_id"] || !strings.Contains(errOut, "repeated 1") ||
		rows[0]["outcome"] != "rejected" || rows[0]["code"] != "invalid_argument" || rows[0]["status"] != "400" || rows[0]["n"] != "1" ||
		rows[0]["reason"] == "" || rows[0]["reason"] == "republished" {
		t.Fatalf("by command id:\n%s", out)
	}
	if strings.Contains(errOut, "not_found") {
		t.Fatalf("the summary uses not_found for a missing outcome: %s", errOut)
	}
}

func TestPublishUsageErrors(t *testing.T) {
	t.Setenv("NATS_URL", "")
	if _, _, err := simctl(t, "publish", "x.ndjson"); err == nil || !strings.Contains(err.Error(), "NATS_URL") {
		t.Fatalf("without NATS_URL: %v", err)
	}
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	if _, _, err := simctl(t, "replay", "--wait"); err == nil || !strings.Contains(err.Error(), "exactly one of --from-seq and --since") {
		t.Fatalf("replay without a range: %v", err)
	}
	if _, _, err := simctl(t, "replay", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "neither a duration") {
		t.Fatalf("replay with a bad --since: %v", err)
	}
}

func TestTailAndStatus(t *testing.T) {
	w := newWorld(t)
	w.startWorker()
	file := writeFile(t, cmdOK, cmdBad, cmdNoAut)
	if _, _, err := simctl(t, "publish", "--wait", file); err != nil {
		t.Fatal(err)
	}
	out, _, err := simctl(t, "tail", "--all", "--type", "rejected", "--count", "2")
	if err != nil {
		t.Fatal(err)
	}
	// Two batches may be in flight: the two rejections come in either order.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(lines)
	if len(lines) != 2 || !strings.Contains(strings.Join(lines, "\n"), "rejected c-2 400 invalid_argument: iccid: must be 18 to 22 digits") ||
		!strings.Contains(strings.Join(lines, "\n"), "rejected c-3 401 unauthorized") {
		t.Fatalf("tail --type rejected:\n%s", out)
	}
	out, _, err = simctl(t, "tail", "--all", "--json", "--command", "c-1", "--count", "1")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(out), &ev); err != nil || ev["commandid"] != "c-1" || ev["type"] != "sim.created" {
		t.Fatalf("tail --json --command c-1: %v %s", err, out)
	}
	// A tail that follows from a start time sees an event published later.
	from := time.Now().UTC().Format(time.RFC3339Nano)
	done := make(chan string, 1)
	go func() {
		o, _, _ := simctl(t, "tail", "--since", from, "--command", "c-new", "--count", "1")
		done <- o
	}()
	if _, _, err := simctl(t, "publish", "--wait", writeFile(t, `{"command_id":"c-new","actor_id":"u-alice","sim":{"device_id":"d-2","iccid":"8944500102198304899"}}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if !strings.Contains(o, "created  c-new") || !strings.Contains(o, "iccid=8944500102198304899 company=co-acme") {
			t.Fatalf("tail of new events: %s", o)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tail saw no new event")
	}

	out, _, err = simctl(t, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SIM_COMMANDS", "SIM_EVENTS", "SIM_DEADLETTER", "simworker", "sim.created", "unauthorized", "SIMs stored"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	// Two SIMs created, one each of two rejections.
	if !regexpMatch(`sim.created\s+201\s+2\b`, out) || !regexpMatch(`SIMs stored\s+2\b`, out) {
		t.Fatalf("status counts:\n%s", out)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// TestUnreachableNATS: every simctl command that needs NATS fails at once,
// non-zero, naming the URL without its password, instead of waiting on
// JetStream calls that cannot be answered.
func TestUnreachableNATS(t *testing.T) {
	t.Setenv("NATS_URL", "nats://someone:s3cret@127.0.0.1:1")
	t.Setenv("DATABASE_URL", "")
	file := writeFile(t, `{"command_id":"c-1","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944500102198304899"}}`)
	for _, args := range [][]string{{"status"}, {"publish", file}, {"replay", "--since", "1h"}, {"tail", "--count", "1"}} {
		start := time.Now()
		_, _, err := simctl(t, args...)
		if err == nil || !strings.Contains(err.Error(), "cannot connect to NATS at nats://someone:***@127.0.0.1:1") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("simctl %s: %v", strings.Join(args, " "), err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("simctl %s took %s to fail", strings.Join(args, " "), took)
		}
	}
}

// TestStatusWithoutDatabase: status says where outcomes by code come from.
func TestStatusWithoutDatabase(t *testing.T) {
	ns, _, _ := consumertest.NATS(t, client.StreamConfig{})
	t.Setenv("NATS_URL", ns.URL)
	t.Setenv("DATABASE_URL", "")
	out, _, err := simctl(t, "status")
	if err != nil || !strings.Contains(out, "set DATABASE_URL") || !strings.Contains(out, "SIM_EVENTS") {
		t.Fatalf("status without DATABASE_URL: %v\n%s", err, out)
	}
}

// TestPublishWithoutWait: the summary says what went out and what did not,
// never "created 0, rejected 0", and an invalid line still fails the run
// with the reason.
func TestPublishWithoutWait(t *testing.T) {
	newWorld(t)
	file := writeFile(t, cmdOK, "this is not an envelope", cmdBad)
	_, errOut, err := simctl(t, "publish", file)
	if !errors.Is(err, errUnpublished) || !strings.Contains(err.Error(), "1 not a command envelope (invalid_line)") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(errOut, "published 2 of 3 lines, 1 not a command envelope (invalid_line); run with --wait for their outcomes") ||
		strings.Contains(errOut, "created") {
		t.Fatalf("summary without --wait: %s", errOut)
	}
}

// TestReplayDryRun: --dry-run lists what would go out, without --wait too,
// and publishes nothing.
func TestReplayDryRun(t *testing.T) {
	w := newWorld(t)
	if _, _, err := simctl(t, "publish", writeFile(t, cmdOK, cmdBad)); err != nil {
		t.Fatal(err)
	}
	s, err := w.js.Stream(context.Background(), client.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	before := s.CachedInfo().State.LastSeq
	for _, args := range [][]string{{"replay", "--from-seq", "1", "--dry-run"}, {"replay", "--from-seq", "1", "--dry-run", "--wait"}} {
		out, errOut, err := simctl(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
		rows := readCSV(t, out)
		if len(rows) != 2 || rows[0]["outcome"] != "would_replay" || rows[0]["command_id"] != "c-1" || rows[1]["command_id"] != "c-2" {
			t.Fatalf("%v listed:\n%s", args, out)
		}
		if !strings.Contains(errOut, "dry run: 2 commands would be replayed; nothing was published") || strings.Contains(errOut, "published 2") {
			t.Fatalf("%v summary: %s", args, errOut)
		}
	}
	s, _ = w.js.Stream(context.Background(), client.CommandsStream)
	if after := s.CachedInfo().State.LastSeq; after != before {
		t.Fatalf("a dry run published: last sequence %d, was %d", after, before)
	}
}
