package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"simworker/app"
	"simworker/client"
	"simworker/internal/devstack"
	"simworker/internal/netfault"
	"simworker/repo"
	"simworker/repo/repotest"
)

// TestSoak is a randomized fault run, a nemesis as in Jepsen: a steady mixed
// load through NATS and through the HTTP API while a seeded schedule
// overlaps faults (SIGKILL of workers and of the API, PostgreSQL immediate
// restart, NATS restart, silent links, latency, resets); then everything
// heals, drains, and every invariant is checked. SIM_SOAK_DURATION (1m in
// make test, 10m for make soak) and SIM_SOAK_SEED are its knobs; a failure
// prints the seed that reproduces the schedule.
func TestSoak(t *testing.T) {
	skipShort(t)
	d := time.Minute
	if v, err := time.ParseDuration(os.Getenv("SIM_SOAK_DURATION")); err == nil && v > 0 {
		d = v
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("SIM_SOAK_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("soak: %s, seed %d", d, seed)
	defer func() {
		if t.Failed() {
			t.Logf("the soak failed: make soak SOAK_SEED=%d SOAK_DURATION=%s repeats its schedule", seed, d)
		}
	}()
	rng := rand.New(rand.NewSource(seed))
	const natsRate = 100 // commands/s through NATS
	b := mixedBatch(int(d.Seconds()) * natsRate)

	ref := newWorld(t, "soak_reference", false)
	ref.publish(b)
	ref.startWorkers(1)
	if !ref.drained(3 * time.Minute) {
		t.Fatalf("the fault-free reference did not drain:\n%s", ref.workers[0].output())
	}
	refOut, _ := ref.outcomes()
	for _, p := range ref.workers {
		_ = p.stop(40 * time.Second)
	}

	w := newWorld(t, "soak", false)
	l := w.proxy()
	w.startWorkers(2)
	apiPort, _ := devstack.FreePort()
	apiEnv := []string{"SIM_API_ADDR=127.0.0.1:" + itoa(apiPort), "SIM_HTTP_ADDR=off", "SIM_API_RATE=0", "SIM_API_WAIT=3s"}
	for _, e := range w.env {
		if strings.HasPrefix(e, "NATS_URL=") || strings.HasPrefix(e, "DATABASE_URL=") || strings.HasPrefix(e, "SIM_LOG_LEVEL=") {
			apiEnv = append(apiEnv, e)
		}
	}
	api := startProcCmd(t, "api", apiEnv...)
	h := newHTTPLoad(t, w, apiPort)

	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	load.Add(2)
	go func() { defer load.Done(); w.pace(ctx, b, d) }()
	httpSeed := rng.Int63() // drawn here, before the nemesis uses rng: the schedule stays the seed's
	go func() { defer load.Done(); h.run(ctx, httpSeed) }()

	n := &nemesis{w: w, l: l, api: api, rng: rng, injected: map[string]int{}}
	n.run(d)
	stopLoad()
	load.Wait()
	healed := time.Now()
	n.healAll()
	h.settle()
	if !w.drained(3 * time.Minute) {
		t.Errorf("the consumer did not drain within 3 minutes of the last fault")
	}
	recovered := time.Since(healed)
	row := w.check(b, refOut)
	inconsistent := h.check(w)
	n.report(t, row, recovered, h, inconsistent)
	for i, p := range w.workers {
		if err := p.stop(40 * time.Second); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, p.output())
		}
	}
}

// pace publishes b evenly over d, each message retried (same Nats-Msg-Id)
// until JetStream takes it, through NATS restarts.
func (w *world) pace(ctx context.Context, b *batch, d time.Duration) {
	interval := d / time.Duration(len(b.msgs))
	start := time.Now()
	for i, m := range b.msgs {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		for {
			pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := w.js.PublishMsg(pctx, client.CommandMsg(m.body, m.msgID))
			cancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	_ = ctx
}

// httpLoad sends POST /v1/sims at a steady pace, each with a key of its own,
// and retries each request whose answer was not final (503, 202, no answer)
// with its key until it is.
type httpLoad struct {
	t      *testing.T
	url    string
	tokens map[string]string // user: token
	client *http.Client

	mu      sync.Mutex
	reqs    []*httpReq
	answers map[int]int // every answer seen, by status (0: no answer)
}

type httpReq struct {
	key, user, body string
	status          int    // the final answer
	commandID       string // Sim-Command-Id
	simID           string // the id in a 201's body
}

func newHTTPLoad(t *testing.T, w *world, port int) *httpLoad {
	h := &httpLoad{t: t, url: "http://127.0.0.1:" + itoa(port) + "/v1/sims", tokens: map[string]string{},
		client: &http.Client{Timeout: 30 * time.Second}, answers: map[int]int{}}
	for _, u := range []string{"u-alice", "u-bob"} {
		tok, _, err := app.New(repo.New(w.pool), "").CreateToken(context.Background(), u, "soak", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		h.tokens[u] = tok
	}
	return h
}

func (h *httpLoad) run(ctx context.Context, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r := &httpReq{key: fmt.Sprintf("soak-%d", i), user: "u-alice",
			body: fmt.Sprintf(`{"device_id":"d-%d","iccid":"8955%015d"}`, i%50, i)}
		switch rng.Intn(10) {
		case 0:
			r.user = "u-bob" // no grant: 401
		case 1:
			r.body = fmt.Sprintf(`{"device_id":"d-missing","iccid":"8955%015d"}`, i) // 404
		case 2:
			r.body = fmt.Sprintf(`{"device_id":"d-%d","iccid":"8955%015d"}`, i%50, i-1) // the ICCID of the one before
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, r)
		h.mu.Unlock()
		go h.send(r)
	}
}

// send posts r once and keeps its answer when final.
func (h *httpLoad) send(r *httpReq) bool {
	req, _ := http.NewRequest(http.MethodPost, h.url, strings.NewReader(r.body))
	req.Header.Set("Authorization", "Bearer "+h.tokens[r.user])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", r.key)
	resp, err := h.client.Do(req)
	status := 0
	var body []byte
	if err == nil {
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[status]++
	if status == 0 || status == http.StatusServiceUnavailable || status == http.StatusAccepted || status == http.StatusTooManyRequests {
		return false
	}
	if r.status != 0 && r.status != status {
		h.t.Errorf("key %s answered %d, then %d", r.key, r.status, status)
	}
	r.status, r.commandID = status, resp.Header.Get("Sim-Command-Id")
	if status == http.StatusCreated {
		var sim struct{ ID string }
		_ = json.Unmarshal(body, &sim)
		r.simID = sim.ID
	}
	return true
}

// settle retries every request without a final answer until it has one.
func (h *httpLoad) settle() {
	h.mu.Lock()
	reqs := append([]*httpReq(nil), h.reqs...)
	h.mu.Unlock()
	deadline := time.Now().Add(3 * time.Minute)
	for _, r := range reqs {
		for {
			h.mu.Lock()
			final := r.status != 0
			h.mu.Unlock()
			if final || h.send(r) {
				break
			}
			if time.Now().After(deadline) {
				h.t.Errorf("key %s never got a final answer", r.key)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// check compares each final answer with its command's outcome event.
func (h *httpLoad) check(w *world) int {
	got, _ := w.outcomes()
	bad := 0
	h.mu.Lock() // a straggling send of the load may still be answered
	reqs := make([]httpReq, len(h.reqs))
	for i, r := range h.reqs {
		reqs[i] = *r
	}
	h.mu.Unlock()
	for _, r := range reqs {
		o := got[r.commandID]
		switch {
		case r.status == 0:
			bad++
		case o == nil:
			bad++
			h.t.Errorf("key %s: %d, but its command %q has no outcome", r.key, r.status, r.commandID)
		case o.status != r.status || (r.status == http.StatusCreated && o.subject != r.simID):
			bad++
			h.t.Errorf("key %s: answered %d %s, its event says %d %s", r.key, r.status, r.simID, o.status, o.subject)
		}
	}
	return bad
}

// nemesis injects the faults of the schedule its seed makes.
type nemesis struct {
	w        *world
	l        *links
	api      *proc
	rng      *rand.Rand
	mu       sync.Mutex
	injected map[string]int
	faults   sync.WaitGroup
	busy     map[string]bool // a fault of this kind in force
}

func (n *nemesis) count(kind string) {
	n.mu.Lock()
	n.injected[kind]++
	n.mu.Unlock()
}

// run starts a fault every 1 to 4 s, each lasting 1 to 5 s, so that they
// overlap, until d has passed.
func (n *nemesis) run(d time.Duration) {
	n.busy = map[string]bool{}
	kinds := []string{"kill_worker", "kill_api", "postgres_restart", "nats_restart", "pg_link_silent", "nats_link_silent", "latency", "pg_resets"}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(1000+n.rng.Intn(3000)) * time.Millisecond)
		kind := kinds[n.rng.Intn(len(kinds))]
		hold := time.Duration(1000+n.rng.Intn(4000)) * time.Millisecond
		victim := n.rng.Intn(len(n.w.workers))
		n.mu.Lock()
		if n.busy[kind] {
			n.mu.Unlock()
			continue
		}
		n.busy[kind] = true
		n.mu.Unlock()
		n.count(kind)
		n.faults.Add(1)
		go func() {
			defer n.faults.Done()
			defer func() { n.mu.Lock(); n.busy[kind] = false; n.mu.Unlock() }()
			n.inject(kind, hold, victim)
		}()
	}
	n.faults.Wait()
}

func (n *nemesis) inject(kind string, hold time.Duration, victim int) {
	w := n.w
	heal := func(f *netfault.Fault, err error) {
		if err != nil {
			w.t.Error(err)
			return
		}
		time.Sleep(hold)
		if err := f.Heal(); err != nil {
			w.t.Error(err)
		}
	}
	switch kind {
	case "kill_worker":
		p := w.workers[victim]
		p.kill()
		time.Sleep(hold / 4)
		p.start()
	case "kill_api":
		n.api.kill()
		time.Sleep(hold / 4)
		n.api.start()
	case "postgres_restart":
		repotest.Crash(w.t, pg)
		time.Sleep(hold / 2)
		var err error
		if pg, err = repotest.Restart(context.Background(), pg, devstack.PostgresOptions{}); err != nil {
			w.t.Errorf("restart PostgreSQL: %v", err)
		}
	case "nats_restart":
		w.nodes[0].Stop()
		time.Sleep(hold / 2)
		if err := w.nodes[0].Restart(); err != nil {
			w.t.Errorf("restart nats-server: %v", err)
		}
	case "pg_link_silent":
		heal(n.l.pg.Silence())
	case "nats_link_silent":
		heal(n.l.nats.Silence())
	case "latency":
		heal(n.l.pg.Latency(20, 20))
	case "pg_resets":
		heal(n.l.pg.ResetPeer(50))
	}
}

// healAll makes sure every process runs again after the schedule.
func (n *nemesis) healAll() {
	for _, p := range n.w.workers {
		if p.exited() {
			p.start()
		}
	}
	if n.api.exited() {
		n.api.start()
	}
}

func (n *nemesis) report(t *testing.T, row tableRow, recovered time.Duration, h *httpLoad, inconsistent int) {
	var sb strings.Builder
	var kinds []string
	total := 0
	for k, c := range n.injected {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, c))
		total += c
	}
	sort.Strings(kinds)
	ok := func(bad int) string {
		return map[bool]string{true: "held", false: fmt.Sprintf("BROKEN (%d)", bad)}[bad == 0]
	}
	fmt.Fprintf(&sb, "faults injected            %d: %s\n", total, strings.Join(kinds, ", "))
	fmt.Fprintf(&sb, "NATS commands              %d, %d outcomes\n", row.commands, row.outcomes)
	h.mu.Lock()
	fmt.Fprintf(&sb, "HTTP requests              %d (answers seen: %v)\n", len(h.reqs), h.answers)
	h.mu.Unlock()
	fmt.Fprintf(&sb, "each command one outcome   %s\n", ok(row.lost))
	fmt.Fprintf(&sb, "no conflicting events      %s\n", ok(row.duplicated+row.mismatched))
	fmt.Fprintf(&sb, "sims = created, ICCIDs 1x  %s\n", ok(row.violations))
	fmt.Fprintf(&sb, "HTTP answer = its event    %s\n", ok(inconsistent))
	fmt.Fprintf(&sb, "recovery                   drained %s after the last fault healed\n", recovered.Round(10*time.Millisecond))
	t.Log("\n" + sb.String())
	if path := os.Getenv("SIM_SOAK_TABLE"); path != "" {
		_ = os.WriteFile(path, []byte(sb.String()), 0o644)
	}
}
