package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"simworker/api"
	"simworker/app"
	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/docs"
	"simworker/docs/openapitest"
	"simworker/internal/devstack"
	"simworker/internal/httpserve"
	"simworker/internal/testfactory"
	"simworker/repo"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

// world is one test's system: its own database with the shared test world,
// its own JetStream server (restartable), the API on a real HTTP server, and
// workers on demand.
type world struct {
	t     *testing.T
	pool  *pgxpool.Pool
	app   *app.App
	dbURL string
	node  *consumertest.Node
	js    jetstream.JetStream
	api   *api.Server
	srv   *httptest.Server
	spec  *openapitest.Validator
}

func setup(t *testing.T, cfg api.Config) *world {
	t.Helper()
	return setupWith(t, cfg, devstack.NATSOptions{})
}

// setupWith is setup on a JetStream server started with o.
func setupWith(t *testing.T, cfg api.Config, o devstack.NATSOptions) *world {
	t.Helper()
	pool, dbURL := repotest.NewDB(t)
	repotest.Load(t, pool, testfactory.World())
	o.StoreDir = t.TempDir()
	node, err := consumertest.StartNode(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Shutdown)
	w := &world{t: t, pool: pool, app: app.New(repo.New(pool), ""), dbURL: dbURL, node: node, spec: openapitest.New(t)}
	nc, err := nats.Connect(node.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if w.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Setup(context.Background(), w.js, client.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg.Docs = docs.Handler(api.NotFound())
	if cfg.Wait == 0 {
		cfg.Wait = 10 * time.Second
	}
	w.api, err = api.New(nc, w.js, w.app, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.api.Close)
	// The API behind the programs' own server and its limits.
	w.srv = httptest.NewUnstartedServer(w.api)
	w.srv.Config = httpserve.New(w.api).Server
	w.srv.Start()
	t.Cleanup(w.srv.Close)
	return w
}

// startWorker runs a worker until the test ends; stop stops it sooner.
func (w *world) startWorker() (stop func() error) {
	w.t.Helper()
	_, stop = consumertest.Worker(w.t, w.node.URL, w.dbURL, consumer.Config{})
	return stop
}

// token makes an API token for user.
func (w *world) token(user string) string {
	w.t.Helper()
	tok, _, err := w.app.CreateToken(context.Background(), user, "test", time.Time{})
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// answer is a response with its body read.
type answer struct {
	*http.Response
	body []byte
}

// json decodes the body into a map, numbers kept exact.
func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(a.body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, a.body)
	}
	return m
}

// fields is the errors[].field list of an error body.
func (a answer) fields(t *testing.T) []string {
	t.Helper()
	var e struct {
		Errors []struct{ Field string } `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Errors == nil {
		t.Fatalf("error body without errors array: %s", a.body)
	}
	var out []string
	for _, f := range e.Errors {
		out = append(out, f.Field)
	}
	return out
}

// do sends a request; header pairs follow the body.
func (w *world) do(method, path, token, body string, header ...string) answer {
	w.t.Helper()
	req, err := http.NewRequest(method, w.srv.URL+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	// Every answer the API gives conforms to docs/openapi.yaml, whatever the
	// request (many here break the document on purpose), and no JSON answer
	// is cached or sniffed as anything else.
	w.spec.CheckResponse(w.t, req, resp, b)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") &&
		(resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff") {
		w.t.Fatalf("%s %s: a JSON answer without Cache-Control: no-store and X-Content-Type-Options: nosniff: %v", method, path, resp.Header)
	}
	return answer{Response: resp, body: b}
}

// post creates a SIM.
func (w *world) post(token, body string, header ...string) answer {
	w.t.Helper()
	return w.do(http.MethodPost, "/v1/sims", token, body, header...)
}

// sims counts the SIM rows.
func (w *world) sims() int {
	w.t.Helper()
	var n int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM sims`).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// eventData is the data of the outcome event stored for a command.
func (w *world) eventData(commandID string) []byte {
	w.t.Helper()
	o, err := w.app.StoredOutcome(context.Background(), commandID)
	if err != nil || o == nil {
		w.t.Fatalf("no stored outcome for %s: %v", commandID, err)
	}
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(o.Event, &ev); err != nil {
		w.t.Fatal(err)
	}
	return ev.Data
}

func jsonNumber(s string) any { return json.Number(s) }

// sameJSON reports whether two JSON documents are equal as values.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		t.Fatalf("not JSON: %s / %s", a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}
