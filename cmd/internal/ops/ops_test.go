package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"simworker/client"
	"simworker/cmd/internal/ops"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/internal/devstack"
	"simworker/repo"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

type env struct {
	dbURL string
	js    jetstream.JetStream
	srv   *ops.Server
	base  string
}

// start runs a worker with its ops endpoint on a free port, on a database of
// the test's own.
func start(t *testing.T) *env {
	t.Helper()
	pool, dbURL := repotest.NewDB(t)
	return startOn(t, pool, dbURL)
}

func startOn(t *testing.T, pool *pgxpool.Pool, dbURL string) *env {
	t.Helper()
	repotest.LoadDemo(t, pool)
	_, nc, js := consumertest.NATS(t, client.StreamConfig{})
	var w atomic.Pointer[consumer.Worker]
	srv := ops.New(nc, js, pool, func() bool { p := w.Load(); return p != nil && p.Ready() })
	if err := srv.Start("127.0.0.1:0", zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	wk, _ := consumertest.WorkerOn(t, js, pool, consumer.Config{Observer: srv.Metrics, RetryWindow: time.Second, MaxBackoff: 200 * time.Millisecond}, nil)
	w.Store(wk)
	return &env{dbURL: dbURL, js: js, srv: srv, base: "http://" + srv.Addr}
}

func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls path until it answers want.
func (e *env) waitStatus(t *testing.T, path string, want int, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, body := e.get(t, path)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d (%s), want %d within %s", path, code, body, want, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scrape(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	_, body := e.get(t, "/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return fams
}

// value of a metric with exactly these labels (0 when absent).
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func TestMetricsCountABatch(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.waitStatus(t, "/readyz", 200, 30*time.Second)
	ctx := context.Background()
	bodies := []string{}
	for i := 0; i < 7; i++ { // created
		bodies = append(bodies, fmt.Sprintf(`{"command_id":"ok-%d","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"89440000000000000%02d"}}`, i, i))
	}
	for i := 0; i < 3; i++ { // 401
		bodies = append(bodies, fmt.Sprintf(`{"command_id":"bob-%d","actor_id":"u-bob","sim":{"device_id":"d-1","iccid":"89440000000000001%02d"}}`, i, i))
	}
	bodies = append(bodies, `{"command_id":"bad","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"1"}}`, `not json`)
	for _, b := range bodies {
		if _, err := e.js.Publish(ctx, client.CreateSubject, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"simworker_commands_total", map[string]string{"type": "sim.created", "code": ""}, 7},
		{"simworker_commands_total", map[string]string{"type": "sim.rejected", "code": "unauthorized"}, 3},
		{"simworker_commands_total", map[string]string{"type": "sim.rejected", "code": "invalid_argument"}, 2},
		{"simworker_processing_seconds", nil, 12},
		{"simworker_dead_letters_total", nil, 0},
		{"simworker_redeliveries_total", nil, 0},
		{"simworker_ack_failures_total", nil, 0},
		{"simworker_consumer_pending", nil, 0},
		{"simworker_consumer_ack_pending", nil, 0},
	}
	// A scrape reads each metric at its own instant, and acknowledgements
	// reach the consumer's state after the outcome is counted: poll until
	// every figure holds together.
	deadline := time.Now().Add(30 * time.Second)
	var fams map[string]*dto.MetricFamily
	for {
		fams = scrape(t, e)
		held := true
		for _, c := range checks {
			held = held && value(fams, c.name, c.labels) == c.want
		}
		if held || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range checks {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"simworker_db_pool_max_conns", "simworker_db_pool_total_conns", "simworker_ack_failures_total",
		"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if value(fams, "simworker_db_pool_max_conns", nil) <= 0 {
		t.Error("pool max conns not reported")
	}
}

// TestReadyzFollowsPostgres: not ready within seconds of PostgreSQL going
// away (here: refusing this database), ready again after it returns; alive
// all along.
func TestReadyzFollowsPostgres(t *testing.T) {
	t.Parallel()
	e := start(t)
	body := e.waitStatus(t, "/readyz", 200, 30*time.Second)
	var r struct {
		Ready  bool        `json:"ready"`
		Checks []ops.Check `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || !r.Ready || len(r.Checks) != 3 {
		t.Fatalf("readyz body %s", body)
	}
	ctx := context.Background()
	restore := repotest.RefuseConnections(t, repotest.ServerURL(t), e.dbURL)
	down := time.Now()
	body = e.waitStatus(t, "/readyz", 503, 10*time.Second)
	t.Logf("not ready %s after PostgreSQL went away: %s", time.Since(down).Round(time.Millisecond), strings.TrimSpace(body))
	if !strings.Contains(body, `"name":"postgres","ok":false`) {
		t.Fatalf("readyz does not blame PostgreSQL: %s", body)
	}
	if code, _ := e.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz %d while PostgreSQL is down", code)
	}
	// A command sent now makes the worker back off, and the metric says so.
	if _, err := e.js.Publish(ctx, client.CreateSubject, []byte(`{"command_id":"during","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944000000000000999"}}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for value(scrape(t, e), "simworker_dependency_retries_total", nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no dependency retry counted while PostgreSQL refused connections")
		}
		time.Sleep(100 * time.Millisecond)
	}
	restore()
	back := time.Now()
	e.waitStatus(t, "/readyz", 200, 10*time.Second)
	t.Logf("ready again %s after PostgreSQL returned", time.Since(back).Round(time.Millisecond))
}

// TestReadyzFollowsPostgresServer: the PostgreSQL server itself stops (a
// cluster of the test's own) and starts again.
func TestReadyzFollowsPostgresServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	pool, err := repo.Open(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := repo.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	e := startOn(t, pool, pg.URL)
	e.waitStatus(t, "/readyz", 200, 30*time.Second)
	repotest.Crash(t, pg) // immediate shutdown
	down := time.Now()
	body := e.waitStatus(t, "/readyz", 503, 10*time.Second)
	t.Logf("not ready %s after PostgreSQL stopped: %s", time.Since(down).Round(time.Millisecond), strings.TrimSpace(body))
	if code, _ := e.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz %d while PostgreSQL is down", code)
	}
	if pg, err = repotest.Restart(ctx, pg, devstack.PostgresOptions{Fast: true}); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	e.waitStatus(t, "/readyz", 200, 15*time.Second)
	t.Logf("ready again %s after PostgreSQL started", time.Since(back).Round(time.Millisecond))
}
