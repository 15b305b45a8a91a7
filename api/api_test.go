package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"simworker/api"
	"simworker/internal/testfactory"
)

func simBody(iccid string, extra ...string) string {
	return `{"device_id":"d-1","iccid":"` + iccid + `"` + strings.Join(extra, "") + `}`
}

// TestChecksBeforeACommand: checks a to g, in order, each with its status,
// code, field and headers; none of them makes a command.
func TestChecksBeforeACommand(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{Rate: 1000, Wait: 100 * time.Millisecond}) // no worker: the first request gets 202
	alice := w.token("u-alice")
	ok := simBody(testfactory.ICCID())
	big := `{"device_id":"d-1","iccid":"` + testfactory.ICCID() + `","sim_metadata":{"x":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}}`
	w.post(alice, simBody(testfactory.ICCID()), "Idempotency-Key", "used-once")
	tests := []struct {
		name   string
		token  string
		body   string
		header []string
		status int
		code   string
		field  string
	}{
		{"a no token", "", ok, nil, 401, "unauthorized", ""},
		{"a malformed token", "not-a-token", ok, nil, 401, "unauthorized", ""},
		{"a unknown token", "sim_0193a3f0-6c1e-7b7e-9a55-3f1c2d3e4f50.secret", ok, nil, 401, "unauthorized", ""},
		{"a wrong secret", alice[:len(alice)-2] + "xx", ok, nil, 401, "unauthorized", ""},
		{"a token beats a bad body", "", "[1]", nil, 401, "unauthorized", ""},
		{"c body too large", alice, big, nil, 413, "invalid_argument", ""},
		{"c too large beats no content type", alice, big, []string{"Content-Type", ""}, 413, "invalid_argument", ""},
		{"d no content type", alice, ok, []string{"Content-Type", ""}, 415, "invalid_argument", ""},
		{"d text/plain", alice, ok, []string{"Content-Type", "text/plain"}, 415, "invalid_argument", ""},
		{"d content type beats a bad body", alice, "[1]", []string{"Content-Type", "text/plain"}, 415, "invalid_argument", ""},
		{"e an array", alice, "[1]", nil, 400, "invalid_argument", "sim"},
		{"e not JSON", alice, "{nope", nil, 400, "invalid_argument", "sim"},
		{"e invalid UTF-8", alice, "{\"device_id\":\"\xff\"}", nil, 400, "invalid_argument", "sim"},
		{"e object beats a bad key", alice, "5", []string{"Idempotency-Key", "clé"}, 400, "invalid_argument", "sim"},
		{"f key too long", alice, ok, []string{"Idempotency-Key", strings.Repeat("k", 129)}, 400, "invalid_argument", "Idempotency-Key"},
		{"f key not printable", alice, ok, []string{"Idempotency-Key", "tab\there"}, 400, "invalid_argument", "Idempotency-Key"},
		{"f key not ASCII", alice, ok, []string{"Idempotency-Key", "clé"}, 400, "invalid_argument", "Idempotency-Key"},
		{"g key reused with another body", alice, simBody(testfactory.ICCID()), []string{"Idempotency-Key", "used-once"}, 422, "idempotency_key_reused", "Idempotency-Key"},
	}
	before := w.commands()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := w.post(tt.token, tt.body, tt.header...)
			if a.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", a.StatusCode, tt.status, a.body)
			}
			m := a.json(t)
			if m["code"] != tt.code || m["command_id"] != "" || m["status"] != jsonInt(tt.status) {
				t.Fatalf("body %s, want code %s, command_id \"\"", a.body, tt.code)
			}
			if got := a.fields(t); tt.field != "" && !slices.Equal(got, []string{tt.field}) || tt.field == "" && len(got) != 0 {
				t.Fatalf("fields %v, want [%s]", got, tt.field)
			}
			if tt.status == 401 && a.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("401 without WWW-Authenticate: Bearer: %v", a.Header)
			}
		})
	}
	if after := w.commands(); after != before {
		t.Fatalf("%d commands made by requests that failed a check", after-before)
	}
}

// commands counts the commands the API recorded.
func (w *world) commands() int {
	w.t.Helper()
	var n int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM api_commands`).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func jsonInt(n int) any { return jsonNumber(fmt.Sprint(n)) }

// TestCheckTableOverHTTP: one request per row of the check table the API can
// reach (rows 1 and 2 are the API's own envelope), its status and body equal
// to the event's data.
func TestCheckTableOverHTTP(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{})
	w.startWorker()
	alice, bob := w.token("u-alice"), w.token("u-bob")
	taken := testfactory.ICCID()
	if a := w.post(alice, simBody(taken)); a.StatusCode != 201 {
		t.Fatalf("setup: %d %s", a.StatusCode, a.body)
	}
	tests := []struct {
		name   string
		token  string
		body   string
		status int
		code   string
		fields []string
	}{
		{"3 every field error", alice, `{"iccid":"123","msisdn":"` + strings.Repeat("1", 21) + `"}`, 400, "invalid_argument", []string{"device_id", "iccid", "msisdn"}},
		{"4 device not found", alice, `{"device_id":"d-none","iccid":"` + testfactory.ICCID() + `"}`, 404, "not_found", []string{"device_id"}},
		{"5 no grant", bob, simBody(testfactory.ICCID()), 401, "unauthorized", nil},
		{"6 MNO integration of another tree", alice, simBody(testfactory.ICCID(), `,"mno_integration_id":"m-globex"`), 404, "not_found", []string{"mno_integration_id"}},
		{"7 ICCID taken", alice, simBody(taken), 400, "already_exists", []string{"iccid"}},
		{"created", alice, `{"device_id":"d-eu","iccid":"` + testfactory.ICCID() + `","id":"ignored","company_id":"co-globex","sim_metadata":{"n":12345678901234567890}}`, 201, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := w.post(tt.token, tt.body)
			if a.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", a.StatusCode, tt.status, a.body)
			}
			id := a.Header.Get("Sim-Command-Id")
			if id == "" {
				t.Fatal("no Sim-Command-Id")
			}
			if data := w.eventData(id); string(data) != string(a.body) {
				t.Fatalf("body is not the event's data:\n%s\n%s", a.body, data)
			}
			m := a.json(t)
			if tt.status == 201 {
				if m["company_id"] != "co-acme-eu" || a.Header.Get("Location") != "/v1/sims/"+m["id"].(string) {
					t.Fatalf("created: %s, Location %s", a.body, a.Header.Get("Location"))
				}
				return
			}
			if m["code"] != tt.code || m["command_id"] != id {
				t.Fatalf("body %s", a.body)
			}
			if got := a.fields(t); !slices.Equal(got, tt.fields) {
				t.Fatalf("fields %v, want %v", got, tt.fields)
			}
		})
	}
}

// TestIdempotency: the same key and body, the same answer with
// Idempotent-Replayed; another body, 422; twenty at once, one SIM; one key
// from two users, two commands; no key, a new command each time.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{Rate: 1000})
	w.startWorker()
	alice, eve := w.token("u-alice"), w.token("u-eve")
	body := simBody(testfactory.ICCID())
	first := w.post(alice, body, "Idempotency-Key", "k-1")
	again := w.post(alice, body, "Idempotency-Key", "k-1")
	if first.StatusCode != 201 || again.StatusCode != 201 || string(first.body) != string(again.body) {
		t.Fatalf("replay: %d %s / %d %s", first.StatusCode, first.body, again.StatusCode, again.body)
	}
	if first.Header.Get("Idempotent-Replayed") != "" || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("Idempotent-Replayed: first %q, replay %q", first.Header.Get("Idempotent-Replayed"), again.Header.Get("Idempotent-Replayed"))
	}
	if a := w.post(alice, simBody(testfactory.ICCID()), "Idempotency-Key", "k-1"); a.StatusCode != 422 {
		t.Fatalf("reuse with another body: %d %s", a.StatusCode, a.body)
	}

	// Twenty at once with one key: one command, one SIM, one answer.
	sims := w.sims()
	body = simBody(testfactory.ICCID())
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = w.post(alice, body, "Idempotency-Key", "k-20") }()
	}
	wg.Wait()
	for _, a := range answers {
		if a.StatusCode != 201 || string(a.body) != string(answers[0].body) {
			t.Fatalf("twenty at once: %d %s, first %s", a.StatusCode, a.body, answers[0].body)
		}
	}
	if n := w.sims() - sims; n != 1 {
		t.Fatalf("twenty requests with one key made %d SIMs", n)
	}

	// The same key from another user is another command (here another
	// company's SIM: eve may create SIMs on co-acme-eu only).
	euBody := `{"device_id":"d-eu","iccid":"` + testfactory.ICCID() + `"}`
	a1, a2 := w.post(alice, euBody, "Idempotency-Key", "shared"), w.post(eve, `{"device_id":"d-eu","iccid":"`+testfactory.ICCID()+`"}`, "Idempotency-Key", "shared")
	if a1.StatusCode != 201 || a2.StatusCode != 201 || a1.Header.Get("Sim-Command-Id") == a2.Header.Get("Sim-Command-Id") {
		t.Fatalf("one key, two users: %d %s / %d %s", a1.StatusCode, a1.body, a2.StatusCode, a2.body)
	}

	// Without a key every request is a new command: the second is a new
	// decision, and its ICCID is taken.
	body = simBody(testfactory.ICCID())
	if a, b := w.post(alice, body), w.post(alice, body); a.StatusCode != 201 || b.StatusCode != 400 || a.Header.Get("Sim-Command-Id") == b.Header.Get("Sim-Command-Id") {
		t.Fatalf("no key twice: %d / %d %s", a.StatusCode, b.StatusCode, b.body)
	}
}

// TestPendingThenCreated: with no worker running the answer is 202 and the
// command pending; once a worker runs, GET /v1/commands says created and the
// same key is answered 201 with the one SIM.
func TestPendingThenCreated(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{Wait: 300 * time.Millisecond})
	alice := w.token("u-alice")
	body := simBody(testfactory.ICCID())
	a := w.post(alice, body, "Idempotency-Key", "pending-1")
	if a.StatusCode != 202 {
		t.Fatalf("no worker: %d %s", a.StatusCode, a.body)
	}
	id := a.Header.Get("Sim-Command-Id")
	if m := a.json(t); m["state"] != "pending" || m["command_id"] != id || a.Header.Get("Location") != "/v1/commands/"+id {
		t.Fatalf("202: %s, Location %s", a.body, a.Header.Get("Location"))
	}
	if s := w.do(http.MethodGet, "/v1/commands/"+id, alice, ""); s.StatusCode != 200 || s.json(t)["state"] != "pending" {
		t.Fatalf("GET while pending: %d %s", s.StatusCode, s.body)
	}
	w.startWorker()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := w.do(http.MethodGet, "/v1/commands/"+id, alice, "")
		if m := s.json(t); m["state"] == "created" {
			if sim, ok := m["sim"].(map[string]any); !ok || sim["iccid"] == nil || m["rejection"] != nil {
				t.Fatalf("created state: %s", s.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never created: %s", s.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := w.post(alice, body, "Idempotency-Key", "pending-1")
	if r.StatusCode != 201 || r.Header.Get("Sim-Command-Id") != id || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after 202: %d %s %v", r.StatusCode, r.body, r.Header)
	}
	if n := w.sims(); n != 1 {
		t.Fatalf("%d SIMs, want 1", n)
	}
	// Another user does not see the command.
	if s := w.do(http.MethodGet, "/v1/commands/"+id, w.token("u-eve"), ""); s.StatusCode != 404 {
		t.Fatalf("another user's command: %d %s", s.StatusCode, s.body)
	}
	if s := w.do(http.MethodGet, "/v1/commands/nope", alice, ""); s.StatusCode != 404 || s.json(t)["code"] != "not_found" {
		t.Fatalf("unknown command: %d %s", s.StatusCode, s.body)
	}
}

// TestNATSDownIs503: while NATS is down a request is 503 with Retry-After;
// retried with its key once NATS is back, it is created, once.
func TestNATSDownIs503(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{PublishAck: 500 * time.Millisecond})
	alice := w.token("u-alice")
	w.node.Stop()
	body := simBody(testfactory.ICCID())
	a := w.post(alice, body, "Idempotency-Key", "outage-1")
	if a.StatusCode != 503 || a.Header.Get("Retry-After") == "" || a.json(t)["code"] != "unavailable" {
		t.Fatalf("NATS down: %d %s %v", a.StatusCode, a.body, a.Header)
	}
	if err := w.node.Restart(); err != nil {
		t.Fatal(err)
	}
	w.startWorker()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := w.post(alice, body, "Idempotency-Key", "outage-1")
		if r.StatusCode == 201 {
			break
		}
		if r.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("after NATS returned: %d %s", r.StatusCode, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := w.sims(); n != 1 {
		t.Fatalf("%d SIMs, want 1", n)
	}
}

// TestGetSimVisibility: a grant on an ancestor or sims:read shows the SIM;
// another tree, an unknown id and a malformed id are the same 404.
func TestGetSimVisibility(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{})
	w.startWorker()
	alice := w.token("u-alice")
	created := w.post(alice, `{"device_id":"d-1","iccid":"`+testfactory.ICCID()+`","sim_metadata":{"b":1,"a":[0.1]}}`)
	if created.StatusCode != 201 {
		t.Fatalf("create: %d %s", created.StatusCode, created.body)
	}
	loc := created.Header.Get("Location")
	for _, user := range []string{"u-alice" /* sims:create on the grandparent */, "u-bob" /* sims:read on the company */} {
		a := w.do(http.MethodGet, loc, w.token(user), "")
		if a.StatusCode != 200 || !sameJSON(t, a.body, created.body) {
			t.Fatalf("%s: %d %s, want %s", user, a.StatusCode, a.body, created.body)
		}
	}
	gina := w.token("u-gina") // another tree
	notFound := w.do(http.MethodGet, loc, gina, "")
	for _, path := range []string{"/v1/sims/0193a3f0-6c1e-7b7e-9a55-3f1c2d3e4f50", "/v1/sims/not-a-uuid", "/v1/sims/" + strings.ToUpper(strings.TrimPrefix(loc, "/v1/sims/"))} {
		a := w.do(http.MethodGet, path, gina, "")
		if a.StatusCode != 404 || string(a.body) != string(notFound.body) || notFound.StatusCode != 404 {
			t.Fatalf("%s: %d %s; another tree: %d %s", path, a.StatusCode, a.body, notFound.StatusCode, notFound.body)
		}
	}
}

// TestTokensExpireAndRevoke: an expired token and a revoked one are 401
// (revoked: within the 5 s the contract allows).
func TestTokensExpireAndRevoke(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{})
	ctx := context.Background()
	soon, _, err := w.app.CreateToken(ctx, "u-alice", "short", time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) int { return w.do(http.MethodGet, "/v1/commands/x", tok, "").StatusCode }
	if c := get(soon); c != 404 {
		t.Fatalf("fresh token: %d", c)
	}
	waitStatus(t, func() int { return get(soon) }, 401, 5*time.Second)
	tok := w.token("u-alice")
	if c := get(tok); c != 404 {
		t.Fatalf("valid token: %d", c)
	}
	if ok, err := w.app.RevokeToken(ctx, tok); err != nil || !ok {
		t.Fatalf("revoke: %v %v", ok, err)
	}
	start := time.Now()
	waitStatus(t, func() int { return get(tok) }, 401, 5*time.Second)
	t.Logf("revoked token refused after %s", time.Since(start).Round(time.Millisecond))
}

func waitStatus(t *testing.T, get func() int, want int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d, want %d within %s", got, want, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRateLimit: past its burst a token gets 429 with Retry-After; another
// token is not held back by it.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{Rate: 2})
	alice, bob := w.token("u-alice"), w.token("u-bob")
	limited := 0
	for i := 0; i < 10; i++ {
		a := w.do(http.MethodGet, "/v1/commands/x", alice, "")
		if a.StatusCode == 429 {
			limited++
			if a.Header.Get("Retry-After") == "" || a.json(t)["code"] != "rate_limited" {
				t.Fatalf("429: %s %v", a.body, a.Header)
			}
		}
	}
	if limited < 5 { // a burst of 4, then 2 per second
		t.Fatalf("%d of 10 quick requests limited at 2/s", limited)
	}
	if a := w.do(http.MethodGet, "/v1/commands/x", bob, ""); a.StatusCode != 404 {
		t.Fatalf("another token: %d", a.StatusCode)
	}
}

// TestUnknownPathAndMethod: 404 and 405 (with Allow) as JSON error bodies.
func TestUnknownPathAndMethod(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{})
	a := w.do(http.MethodGet, "/v2/nothing", "", "")
	if a.StatusCode != 404 || a.json(t)["code"] != "not_found" {
		t.Fatalf("unknown path: %d %s", a.StatusCode, a.body)
	}
	a = w.do(http.MethodDelete, "/v1/sims", "", "")
	if a.StatusCode != 405 || a.json(t)["code"] != "method_not_allowed" || a.Header.Get("Allow") != "POST" {
		t.Fatalf("DELETE /v1/sims: %d %s Allow %q", a.StatusCode, a.body, a.Header.Get("Allow"))
	}
	a = w.do(http.MethodPost, "/v1/sims/x", "", "{}")
	if a.StatusCode != 405 || !strings.Contains(a.Header.Get("Allow"), "GET") {
		t.Fatalf("POST /v1/sims/x: %d %s Allow %q", a.StatusCode, a.body, a.Header.Get("Allow"))
	}
}
