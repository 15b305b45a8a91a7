package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer/consumertest"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/repo/repotest"
)

// env reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// natsConnect connects the way the suite observes: reconnecting through
// server restarts.
func natsConnect(url string) (*nats.Conn, error) {
	return nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
}

// world is one scenario's system: a database, JetStream (one node or three),
// worker processes.
type world struct {
	t       *testing.T
	name    string
	dbURL   string
	pool    *pgxpool.Pool
	nodes   []*consumertest.Node
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream
	workers []*proc
	env     []string
	faultAt int // outcomes in SIM_EVENTS when the fault struck; -1: none

	// Network faults: workers through fault proxies, each with its /readyz.
	readyz   bool
	opsAddrs []string
	noticed  time.Duration // fault to a worker's /readyz answering 503 (-1: never; 0: not measured)
	healedAt time.Time
	resume   time.Duration // link healed to outcomes flowing again (-1: never)
}

func newWorld(t *testing.T, name string, clustered bool) *world {
	t.Helper()
	w := &world{t: t, name: name, faultAt: -1}
	w.dbURL, w.pool = newDatabase(t, name)
	repotest.Load(t, w.pool, faultFixtures())
	replicas := 1
	var err error
	if clustered {
		w.nodes, err = consumertest.StartCluster(3, t.TempDir())
		replicas = 3
	} else {
		var s *consumertest.Node
		s, err = consumertest.StartNode(devstack.NATSOptions{StoreDir: t.TempDir()})
		w.nodes = []*consumertest.Node{s}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range w.nodes {
		t.Cleanup(s.Shutdown)
	}
	w.natsURL = consumertest.ClusterURL(w.nodes)
	w.nc, err = natsConnect(w.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nc.Close)
	w.js, _ = jetstream.New(w.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = client.Setup(actx, w.js, client.StreamConfig{Replicas: replicas, AckWait: 2 * time.Second})
		acancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond) // a young cluster may not be ready for stream creation
	}
	if err != nil {
		t.Fatal(err)
	}
	w.env = []string{
		"NATS_URL=" + w.natsURL, "DATABASE_URL=" + w.dbURL, "SIM_LOG_LEVEL=warn", "SIM_HTTP_ADDR=127.0.0.1:0",
		"SIM_ACK_WAIT=2s", "SIM_MAX_BACKOFF=500ms", "SIM_RETRY_WINDOW=2s", "SIM_BATCH_SIZE=50",
		"SIM_STREAM_REPLICAS=" + strconv.Itoa(replicas),
	}
	return w
}

func (w *world) startWorkers(n int) {
	for i := 0; i < n; i++ {
		w.startWorker()
	}
}

// publish sends the batch, retrying publishes that fail (same Nats-Msg-Id,
// so a retry of one that did land is dropped by JetStream).
func (w *world) publish(b *batch) {
	w.t.Helper()
	ctx := context.Background()
	pending := b.msgs
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 20 {
			w.t.Fatalf("could not publish %d commands", len(pending))
		}
		futures := make([]jetstream.PubAckFuture, len(pending))
		for i, m := range pending {
			futures[i], _ = w.js.PublishMsgAsync(client.CommandMsg(m.body, m.msgID))
		}
		var failed []message
		for i, f := range futures {
			if f == nil {
				failed = append(failed, pending[i])
				continue
			}
			select {
			case <-f.Ok():
			case <-f.Err():
				failed = append(failed, pending[i])
			case <-time.After(10 * time.Second):
				failed = append(failed, pending[i])
			case <-ctx.Done():
			}
		}
		pending = failed
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// strike records how far the batch was when the fault struck.
func (w *world) strike() {
	if w.faultAt < 0 {
		w.faultAt = w.eventCount()
	}
}

// eventCount is how many events SIM_EVENTS holds (-1 when it cannot say).
func (w *world) eventCount() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, client.EventsStream)
	if err != nil {
		return -1
	}
	return int(s.CachedInfo().State.Msgs)
}

// waitEvents waits until SIM_EVENTS holds at least n events.
func (w *world) waitEvents(n int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for w.eventCount() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// drained waits until the consumer has nothing pending or unacknowledged.
func (w *world) drained(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := w.js.Consumer(ctx, client.CommandsStream, client.DurableName)
		if err == nil {
			info := c.CachedInfo()
			if info.NumPending == 0 && info.NumAckPending == 0 {
				cancel()
				return true
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// result is what one command came to.
type result struct {
	eventIDs  map[string]bool
	signature string // type, status, code, fields; for created also ICCID and company
	created   bool
	code      domain.Code
	subject   string // the SIM id (created) or the command id
	status    int    // the rejection's status; 201 for created
}

// outcomes reads SIM_EVENTS: command id to result, and the events of bodies
// without a command id.
func (w *world) outcomes() (map[string]*result, map[string]bool) {
	w.t.Helper()
	byCmd := map[string]*result{}
	noID := map[string]bool{}
	for _, m := range consumertest.StreamMessages(w.t, w.js, client.EventsStream) {
		var ev struct {
			domain.CloudEvent
			Data struct {
				Status    json.RawMessage     `json:"status"` // 400 (rejected) or "inactive" (created)
				Code      domain.Code         `json:"code"`
				Errors    []domain.FieldError `json:"errors"`
				ICCID     string              `json:"iccid"`
				CompanyID string              `json:"company_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			w.t.Fatal(err)
		}
		if ev.CommandID == "" {
			noID[ev.ID] = true
			continue
		}
		r := byCmd[ev.CommandID]
		if r == nil {
			r = &result{eventIDs: map[string]bool{}}
			byCmd[ev.CommandID] = r
		}
		r.eventIDs[ev.ID] = true
		var fields []string
		for _, f := range ev.Data.Errors {
			fields = append(fields, f.Field)
		}
		r.created, r.code, r.subject = ev.Type == domain.TypeCreated, ev.Data.Code, ev.Subject
		r.status = 201
		if !r.created {
			r.status, _ = strconv.Atoi(string(ev.Data.Status))
		}
		r.signature = fmt.Sprintf("%s %s %s [%s] %s %s", ev.Type, ev.Data.Status, ev.Data.Code, strings.Join(fields, ","), ev.Data.ICCID, ev.Data.CompanyID)
	}
	return byCmd, noID
}

// row is a line of the fault table.
type tableRow struct {
	scenario                                 string
	commands, outcomes                       int
	lost, duplicated, mismatched, violations int
	faultAt                                  int
	recover                                  time.Duration
	noticed, resume                          time.Duration // network faults only
}

// check compares a scenario's outcomes with the fault-free reference and
// checks the database.
func (w *world) check(b *batch, ref map[string]*result) tableRow {
	w.t.Helper()
	got, noID := w.outcomes()
	row := tableRow{scenario: w.name, commands: b.commands + b.garbage, outcomes: len(noID)}
	inClash := map[string]bool{}
	for _, members := range b.clash {
		for _, id := range members {
			inClash[id] = true
		}
	}
	createdEvents := 0
	for id, want := range ref {
		r := got[id]
		if r == nil {
			row.lost++
			w.t.Errorf("%s: command %s has no outcome", w.name, id)
			continue
		}
		row.outcomes++
		if len(r.eventIDs) != 1 {
			row.duplicated++
			w.t.Errorf("%s: command %s has %d distinct outcomes", w.name, id, len(r.eventIDs))
		}
		if r.created {
			createdEvents++
		}
		if !inClash[id] && r.signature != want.signature {
			row.mismatched++
			w.t.Errorf("%s: command %s: %s, fault-free run: %s", w.name, id, r.signature, want.signature)
		}
	}
	for id, r := range got {
		if ref[id] != nil {
			continue
		}
		if strings.HasPrefix(id, "api-") { // made by the API: checked against its answers
			if r.created {
				createdEvents++
			}
			if len(r.eventIDs) != 1 {
				row.duplicated++
				w.t.Errorf("%s: API command %s has %d distinct outcomes", w.name, id, len(r.eventIDs))
			}
			continue
		}
		row.duplicated++
		w.t.Errorf("%s: outcome for unknown command %s", w.name, id)
	}
	// Under concurrency and redelivery the winner of an ICCID clash may differ
	// from the fault-free run; what may not differ is that exactly one wins.
	for iccid, members := range b.clash {
		created, exists := 0, 0
		for _, id := range members {
			if r := got[id]; r != nil && r.created {
				created++
			} else if r != nil && r.code == domain.CodeAlreadyExists {
				exists++
			}
		}
		if created != 1 || exists != len(members)-1 {
			row.mismatched++
			w.t.Errorf("%s: ICCID %s: %d created, %d already_exists among %v", w.name, iccid, created, exists, members)
		}
	}
	if len(noID) != b.garbage {
		if len(noID) < b.garbage {
			row.lost += b.garbage - len(noID)
		} else {
			row.duplicated += len(noID) - b.garbage
		}
		w.t.Errorf("%s: %d outcomes for %d bodies without a command id", w.name, len(noID), b.garbage)
	}
	// The batch holds no poison: a dead letter means a fault was mistaken
	// for a bad command.
	if dl, err := w.js.Stream(context.Background(), client.DeadLetterStream); err != nil || dl.CachedInfo().State.Msgs != 0 {
		row.violations++
		w.t.Errorf("%s: dead letters from faults (or no dead-letter stream: %v)", w.name, err)
	}
	var rows, distinct int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT iccid) FROM sims`).Scan(&rows, &distinct); err != nil {
		w.t.Fatal(err)
	}
	if rows != createdEvents || rows != distinct {
		row.violations++
		w.t.Errorf("%s: sims rows %d, distinct ICCIDs %d, created outcomes %d", w.name, rows, distinct, createdEvents)
	}
	return row
}

// scenario is one fault, injected while the workers work.
type scenario struct {
	name      string
	workers   int
	clustered bool
	// fault runs once publishing is done and workers run; it returns when
	// the fault is over (the dependency is back).
	fault func(w *world, b *batch)
	// net, instead of fault, is a network fault: the workers reach their
	// dependencies through fault proxies.
	net func(w *world, l *links)
}

func TestFaultSuite(t *testing.T) {
	skipShort(t)
	n := envInt("SIM_FAULT_COMMANDS", 1500)
	rounds := envInt("SIM_FAULT_ROUNDS", 4)
	b := mixedBatch(n)

	// Reference: one worker, no fault.
	ref := newWorld(t, "fault_free", false)
	ref.publish(b)
	start := time.Now()
	ref.startWorkers(1)
	if !ref.drained(3 * time.Minute) {
		t.Fatalf("fault-free run did not drain:\n%s", ref.workers[0].output())
	}
	refOut, _ := ref.outcomes()
	table := []tableRow{ref.check(b, refOut)}
	table[0].faultAt = -1
	table[0].recover = time.Since(start)
	if t.Failed() {
		t.FailNow()
	}

	started := func(w *world, frac int) { w.waitEvents(b.commands/frac, time.Minute) }
	scenarios := []scenario{
		{name: "sigkill_worker", workers: 2, fault: func(w *world, b *batch) {
			for i := 0; i < rounds; i++ {
				w.waitEvents(b.commands*(i+1)/(rounds+2), time.Minute)
				p := w.workers[i%len(w.workers)]
				w.strike()
				p.kill()
				p.start()
			}
		}},
		{name: "postgres_crash", workers: 2, fault: func(w *world, b *batch) {
			started(w, 4)
			w.strike()
			repotest.Crash(w.t, pg) // immediate shutdown: no checkpoint, crash recovery at start
			time.Sleep(2 * time.Second)
			var err error
			if pg, err = repotest.Restart(context.Background(), pg, devstack.PostgresOptions{}); err != nil {
				w.t.Fatalf("restart PostgreSQL: %v", err)
			}
		}},
		{name: "postgres_refuses", workers: 2, fault: func(w *world, b *batch) {
			started(w, 4)
			w.strike()
			restore := repotest.RefuseConnections(w.t, pg.URL, w.dbURL)
			time.Sleep(3 * time.Second)
			restore()
		}},
		{name: "nats_restart", workers: 2, fault: func(w *world, b *batch) {
			started(w, 4)
			w.strike()
			w.nodes[0].Stop()
			time.Sleep(2 * time.Second)
			if err := w.nodes[0].Restart(); err != nil {
				w.t.Fatalf("restart nats-server: %v", err)
			}
		}},
		{name: "three_workers", workers: 3, fault: func(w *world, b *batch) {}},
		{name: "cluster_leader_killed", workers: 2, clustered: true, fault: func(w *world, b *batch) {
			started(w, 4)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := w.js.Stream(ctx, client.CommandsStream)
			if err != nil {
				w.t.Fatal(err)
			}
			leader := s.CachedInfo().Cluster.Leader
			for _, node := range w.nodes {
				if node.Name() == leader {
					w.strike()
					node.Stop()
					time.Sleep(3 * time.Second)
					if err := node.Restart(); err != nil {
						w.t.Fatalf("restart %s: %v", leader, err)
					}
					return
				}
			}
			w.t.Fatalf("stream leader %q is none of the nodes", leader)
		}},
	}
	scenarios = append(scenarios, netScenarios(t, started)...)
	if only := os.Getenv("SIM_FAULT_ONLY"); only != "" {
		var keep []scenario
		for _, s := range scenarios {
			if strings.Contains(only, s.name) {
				keep = append(keep, s)
			}
		}
		scenarios = keep
	}
	for _, sc := range scenarios {
		w := newWorld(t, sc.name, sc.clustered)
		var l *links
		if sc.net != nil {
			l = w.proxy()
		}
		w.publish(b)
		w.startWorkers(sc.workers)
		if sc.net != nil {
			sc.net(w, l)
		} else {
			sc.fault(w, b)
		}
		faultOver := time.Now()
		if !w.drained(3 * time.Minute) {
			t.Errorf("%s: the consumer did not drain within 3 minutes", sc.name)
			for i, p := range w.workers {
				t.Logf("%s worker %d:\n%s", sc.name, i, p.output())
			}
		}
		row := w.check(b, refOut)
		row.recover, row.faultAt = time.Since(faultOver), w.faultAt
		if sc.net != nil {
			row.noticed, row.resume = w.noticed, w.resume
			if w.noticed < 0 {
				t.Errorf("%s: no worker's /readyz said not ready within 10 s of the link dying", sc.name)
			}
			if w.resume < 0 || w.resume > 10*time.Second {
				t.Errorf("%s: outcomes flowed again %s after the link healed, want within 10 s", sc.name, w.resume)
			}
			for i, p := range w.workers {
				if p.exited() {
					t.Errorf("%s: worker %d exited during the fault:\n%s", sc.name, i, p.output())
				}
			}
		}
		if w.faultAt >= b.commands {
			t.Errorf("%s: the fault struck after every outcome was out: it proved nothing", sc.name)
		}
		table = append(table, row)
		if os.Getenv("SIM_FAULT_LOGS") != "" {
			for i, p := range w.workers {
				t.Logf("%s worker %d:\n%s", sc.name, i, p.output())
			}
		}
		for i, p := range w.workers {
			if err := p.stop(40 * time.Second); err != nil {
				t.Errorf("%s: worker %d: %v\n%s", sc.name, i, err, p.output())
			}
		}
	}
	report(t, table)
}

// report prints the fault table to the test log and, when SIM_FAULT_TABLE
// names a file, there (make test shows it).
func report(t *testing.T, rows []tableRow) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-24s %9s %9s %6s %11s %11s %10s %9s %12s %9s %9s\n", "scenario", "commands", "outcomes", "lost", "duplicated",
		"mismatched", "db_checks", "fault_at", "recover", "noticed", "resume")
	sort.SliceStable(rows, func(i, j int) bool { return i == 0 && j != 0 })
	dur := func(d time.Duration) string {
		switch {
		case d == 0:
			return "-"
		case d < 0:
			return "never"
		}
		return d.Round(10 * time.Millisecond).String()
	}
	for _, r := range rows {
		at := "-"
		if r.faultAt >= 0 {
			at = strconv.Itoa(r.faultAt)
		}
		fmt.Fprintf(&sb, "%-24s %9d %9d %6d %11d %11d %10s %9s %12s %9s %9s\n", r.scenario, r.commands, r.outcomes, r.lost, r.duplicated,
			r.mismatched, map[bool]string{true: "ok", false: "FAILED"}[r.violations == 0], at, r.recover.Round(10*time.Millisecond),
			dur(r.noticed), dur(r.resume))
	}
	sb.WriteString("fault_at: outcomes already out when the fault struck; recover: from the end of the fault (the dependency\n" +
		"back, the last worker restarted) until the consumer drained to zero pending; for fault_free, the whole run.\n" +
		"Network faults: noticed: from a link going silent to a worker's /readyz answering 503; resume: from the\n" +
		"link healing to 100 more outcomes in SIM_EVENTS or none left to decide (0s: the workers kept deciding).\n")
	t.Log("\n" + sb.String())
	if path := os.Getenv("SIM_FAULT_TABLE"); path != "" {
		_ = os.WriteFile(path, []byte(sb.String()), 0o644)
	}
}
