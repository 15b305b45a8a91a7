package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"simworker/api"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/internal/testfactory"
)

// TestHostileRequests: what the contract's "The rest" says a hostile or
// careless client gets, each answer checked against the document.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{Wait: 100 * time.Millisecond})
	alice, gina := w.token("u-alice"), w.token("u-gina")
	acquires := func() int64 { return w.pool.Stat().AcquireCount() }

	t.Run("two Authorization headers are 400, whichever comes first", func(t *testing.T) {
		for _, path := range []string{"/v1/sims", "/v1/sims/" + uuid.NewString(), "/v1/commands/c-1"} {
			method := http.MethodGet
			if path == "/v1/sims" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, w.srv.URL+path, strings.NewReader(simBody("8944500102198300001")))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Add("Authorization", "Bearer "+gina)
			req.Header.Add("Authorization", "Bearer "+alice)
			a := w.send(req)
			if a.StatusCode != 400 || a.json(t)["code"] != "invalid_argument" || !slices.Equal(a.fields(t), []string{"Authorization"}) {
				t.Fatalf("%s %s: %d %s", method, path, a.StatusCode, a.body)
			}
		}
	})
	t.Run("a path parameter that is not valid UTF-8 or holds a control character is 404", func(t *testing.T) {
		before := acquires()
		for _, id := range []string{"%ff", "%00", "%c3%28", "c%0a1", "%7f", "%c2%9b", strings.Repeat("c", 129)} {
			for _, path := range []string{"/v1/commands/", "/v1/sims/"} {
				a := w.do(http.MethodGet, path+id, alice, "")
				if a.StatusCode != 404 || a.json(t)["code"] != "not_found" {
					t.Fatalf("GET %s%s: %d %s", path, id, a.StatusCode, a.body)
				}
			}
		}
		if n := acquires() - before; n > 1 { // the token's check at most
			t.Fatalf("%d queries for ids that cannot be", n)
		}
	})
	t.Run("a body that is not valid JSON says so and where", func(t *testing.T) {
		for body, want := range map[string]string{
			`{"device_id": "d-1", "iccid": `:    "the body is not valid JSON: unexpected end of JSON input (at byte 30)",
			`{"device_id": "d-1" "iccid": "1"}`: "the body is not valid JSON: invalid character '\"' after object key:value pair (at byte 21)",
			"{\"device_id\": \"\xff\"}":         "the body is not valid JSON: invalid UTF-8 at byte 15",
			``:                                  "the body is not valid JSON: unexpected end of JSON input (at byte 0)",
		} {
			a := w.post(alice, body, "Content-Type", "application/json")
			m := a.json(t)
			if a.StatusCode != 400 || m["message"] != want || !slices.Equal(a.fields(t), []string{"sim"}) {
				t.Fatalf("%q: %d %s, want message %q", body, a.StatusCode, a.body, want)
			}
		}
		if a := w.post(alice, `[1]`); a.StatusCode != 400 || a.json(t)["message"] != "sim: must be a JSON object" {
			t.Fatalf("an array: %d %s", a.StatusCode, a.body)
		}
	})
	t.Run("a token in another spelling is refused without a query", func(t *testing.T) {
		id, secret, _ := strings.Cut(strings.TrimPrefix(alice, "sim_"), ".")
		u := uuid.MustParse(id)
		before := acquires()
		for _, spelling := range []string{strings.ToUpper(id), "{" + id + "}", "urn:uuid:" + id, strings.ReplaceAll(id, "-", ""),
			id + "x", id[:35]} {
			tok := "sim_" + spelling + "." + secret
			if a := w.do(http.MethodGet, "/v1/sims/"+u.String(), tok, ""); a.StatusCode != 401 {
				t.Fatalf("%s: %d %s", spelling, a.StatusCode, a.body)
			}
		}
		for _, bad := range []string{secret + "x", secret[:42], secret[:42] + "!"} {
			if a := w.do(http.MethodGet, "/v1/sims/"+u.String(), "sim_"+id+"."+bad, ""); a.StatusCode != 401 {
				t.Fatalf("secret %q: %d %s", bad, a.StatusCode, a.body)
			}
		}
		if n := acquires() - before; n != 0 {
			t.Fatalf("%d queries for malformed tokens", n)
		}
		if a := w.do(http.MethodGet, "/v1/sims/"+u.String(), alice, ""); a.StatusCode != 404 {
			t.Fatalf("the token as made: %d %s", a.StatusCode, a.body)
		}
	})
}

// TestRefusedTokenFlood: 16 clients sending made-up tokens from one address
// get 429 (Retry-After) once more than 100 a second are refused, without a
// query each: the queries stay near 100 a second whatever the flood. A
// token valid within the last minute keeps working from that address
// meanwhile; one never seen before waits with the rest.
func TestRefusedTokenFlood(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{Wait: 100 * time.Millisecond})
	alice := w.token("u-alice")
	if a := w.do(http.MethodGet, "/v1/commands/c-none", alice, ""); a.StatusCode != 404 {
		t.Fatalf("alice before the flood: %d %s", a.StatusCode, a.body)
	}
	fresh := w.token("u-gina") // valid, never used yet

	flood := func(d time.Duration) (answers map[int]int64, retryAfter bool) {
		var mu sync.Mutex
		answers = map[int]int64{}
		var sawRetry atomic.Bool
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					tok := "sim_" + uuid.Must(uuid.NewV7()).String() + "." + strings.Repeat("A", 43)
					req, _ := http.NewRequest(http.MethodGet, w.srv.URL+"/v1/commands/c-1", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "" {
						sawRetry.Store(true)
					}
					mu.Lock()
					answers[resp.StatusCode]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return answers, sawRetry.Load()
	}

	// Alone: every refused token that was checked cost a query; the rest
	// were 429 without one.
	before := w.pool.Stat().AcquireCount()
	start := time.Now()
	answers, retryAfter := flood(3 * time.Second)
	queries := w.pool.Stat().AcquireCount() - before
	elapsed := time.Since(start).Seconds()
	t.Logf("flood of %.1f s: answers %v, %d queries", elapsed, answers, queries)
	if answers[429] == 0 || !retryAfter {
		t.Fatalf("no 429 with Retry-After: %v", answers)
	}
	if len(answers) != 2 {
		t.Fatalf("answers other than 401 and 429: %v", answers)
	}
	if limit := int64(100 + 100*elapsed*1.2); queries > limit || queries != answers[401] {
		t.Fatalf("%d queries for %d refusals in %.1f s, want one per 401 and at most %d", queries, answers[401], elapsed, limit)
	}

	// With alice among the flood: she keeps working, gina's new token waits.
	done := make(chan struct{})
	go func() { defer close(done); flood(3 * time.Second) }()
	time.Sleep(500 * time.Millisecond) // the flood under way: its address blocked
	for i := 0; i < 10; i++ {
		if a := w.do(http.MethodGet, "/v1/commands/c-none", alice, ""); a.StatusCode != 404 {
			t.Fatalf("alice during the flood, request %d: %d %s", i, a.StatusCode, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a := w.do(http.MethodGet, "/v1/commands/c-none", fresh, "") // 429, unless it won a check from the flood
	<-done
	if a.StatusCode != 429 && a.StatusCode != 404 {
		t.Fatalf("a new token during the flood: %d %s", a.StatusCode, a.body)
	}
	// Once the flood stops, the address's rate of refusals falls and gina's
	// token is checked.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := w.do(http.MethodGet, "/v1/commands/c-none", fresh, "")
		if a.StatusCode == 404 {
			break
		}
		if a.StatusCode != 429 || time.Now().After(deadline) {
			t.Fatalf("gina after the flood: %d %s", a.StatusCode, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCommandRefusedForItsSizeIs413: a command the NATS server refuses for
// what it is (larger than its max_payload) is no outage: 413 at once, not a
// 503 that a retry would meet for ever.
func TestCommandRefusedForItsSizeIs413(t *testing.T) {
	t.Parallel()
	w := setupWith(t, api.Config{Wait: 100 * time.Millisecond}, devstack.NATSOptions{MaxPayload: 2048})
	alice := w.token("u-alice")
	a := w.post(alice, simBody("8944500102198300002", `,"rate_plan":"`+strings.Repeat("r", 255)+`","sim_metadata":{"pad":"`+strings.Repeat("p", 3000)+`"}`))
	if a.StatusCode != 413 || a.json(t)["code"] != "invalid_argument" {
		t.Fatalf("%d %s", a.StatusCode, a.body)
	}
	if a := w.post(alice, simBody("8944500102198300003")); a.StatusCode != 202 { // no worker: a small one is published
		t.Fatalf("a small command: %d %s", a.StatusCode, a.body)
	}
}

// send sends a prepared request, its answer checked as do's.
func (w *world) send(req *http.Request) answer {
	w.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 0, 512)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	w.spec.CheckResponse(w.t, req, resp, b)
	return answer{Response: resp, body: b}
}

// TestMetadataBoundsOverHTTP: the same bounds through the API: at each
// bound 201, past it 400 with field sim_metadata, the 195-byte request
// that once jammed the worker among them.
func TestMetadataBoundsOverHTTP(t *testing.T) {
	t.Parallel()
	w := setup(t, api.Config{})
	w.startWorker()
	alice := w.token("u-alice")
	for i, tt := range []struct {
		md     string
		status int
	}{
		{string(testfactory.StoredMetadata(domain.MaxMetadataStoredBytes)), 201},
		{string(testfactory.StoredMetadata(domain.MaxMetadataStoredBytes + 1)), 400},
		{`{"a":1e99,"b":-1e-99}`, 201},
		{`{"a":1e100}`, 400},
		{`{"a":1e-100}`, 400},
		{`{"n0":1e131071,"n1":1e131071,"n2":1e131071,"n3":1e131071,"n4":1e131071,"n5":1e131071,"n6":1e131071,"n7":1e131071,"n8":1e131071}`, 400},
	} {
		a := w.post(alice, simBody(fmt.Sprintf("89445001021983%05d", 10+i), `,"sim_metadata":`+tt.md))
		if a.StatusCode != tt.status || tt.status == 400 && !slices.Equal(a.fields(t), []string{"sim_metadata"}) {
			t.Fatalf("metadata %d: %d %s", i, a.StatusCode, a.body)
		}
	}
}
