package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

// fixtures is the reference data most tests share: a three-level tree
// reseller > acme > acme-eu, a sibling tree globex, grants at several levels.
const fixtures = `{
 "companies": [
  {"id": "co-reseller", "name": "Reseller", "parent_id": null},
  {"id": "co-acme", "name": "Acme", "parent_id": "co-reseller"},
  {"id": "co-acme-eu", "name": "Acme EU", "parent_id": "co-acme"},
  {"id": "co-globex", "name": "Globex", "parent_id": null}
 ],
 "users": [{"id": "u-alice", "name": "Alice"}, {"id": "u-bob", "name": "Bob"},
           {"id": "u-gina", "name": "Gina"}, {"id": "u-eve", "name": "Eve"}],
 "grants": [
  {"user_id": "u-alice", "company_id": "co-reseller", "permission": "sims:create"},
  {"user_id": "u-gina", "company_id": "co-globex", "permission": "sims:create"},
  {"user_id": "u-eve", "company_id": "co-acme-eu", "permission": "sims:read"},
  {"user_id": "u-eve", "company_id": "co-acme-eu", "permission": "sims:create"},
  {"user_id": "u-bob", "company_id": "co-acme", "permission": "sims:read"}
 ],
 "devices": [
  {"id": "d-1", "company_id": "co-acme", "name": "Tracker 1"},
  {"id": "d-eu", "company_id": "co-acme-eu", "name": "Tracker EU"},
  {"id": "d-globex", "company_id": "co-globex", "name": "Meter"}
 ],
 "mno_integrations": [
  {"id": "m-reseller", "company_id": "co-reseller", "name": "Reseller CMP"},
  {"id": "m-acme", "company_id": "co-acme", "name": "Acme CMP"},
  {"id": "m-acme-eu", "company_id": "co-acme-eu", "name": "Acme EU CMP"},
  {"id": "m-globex", "company_id": "co-globex", "name": "Globex CMP"}
 ]
}`

// bundle is one test's world: its own database, its own JetStream server,
// the streams set up, and a view of every event published.
type bundle struct {
	t     *testing.T
	pool  *pgxpool.Pool
	dbURL string
	ns    *devstack.NATS
	nc    *nats.Conn
	js    jetstream.JetStream
	cons  jetstream.Consumer

	mu     sync.Mutex
	events []event // every publish seen on sim.events.> (core subscription: re-publishes too)
}

// event is a received CloudEvent with its data kept raw.
type event struct {
	domain.CloudEvent
	MsgID string
	raw   []byte
}

func (e event) rejection(t *testing.T) domain.Rejection {
	t.Helper()
	var r domain.Rejection
	if err := json.Unmarshal(e.Data, &r); err != nil {
		t.Fatalf("rejection data: %v: %s", err, e.Data)
	}
	return r
}

func (e event) sim(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(e.Data))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("sim data: %v", err)
	}
	return m
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool, dbURL := repotest.NewDB(t)
	repotest.LoadFixtures(t, pool, fixtures)
	b := &bundle{t: t, pool: pool, dbURL: dbURL}
	b.ns, b.nc, b.js = consumertest.NATS(t, consumer.StreamConfig{AckWait: 5 * time.Second})
	cons, err := b.js.Consumer(context.Background(), client.CommandsStream, consumer.DurableName)
	if err != nil {
		t.Fatal(err)
	}
	b.cons = cons
	_, err = b.nc.Subscribe(client.EventsSubject, func(m *nats.Msg) {
		var ev event
		if err := json.Unmarshal(m.Data, &ev.CloudEvent); err != nil {
			t.Errorf("event is not a CloudEvent: %v: %s", err, m.Data)
			return
		}
		ev.MsgID, ev.raw = m.Header.Get(jetstream.MsgIDHeader), m.Data
		b.mu.Lock()
		b.events = append(b.events, ev)
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return b
}

// startWorker runs a worker with its own NATS connection and pool until the
// test ends (or the returned stop is called, which waits for Run to return).
func (b *bundle) startWorker(cfg consumer.Config) (stop func() error) {
	b.t.Helper()
	_, stop = consumertest.Worker(b.t, b.ns.URL, b.dbURL, cfg)
	return stop
}

// publish sends a command body with Nats-Msg-Id msgID (none when empty).
func (b *bundle) publish(body, msgID string) {
	b.t.Helper()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := b.js.Publish(context.Background(), client.CreateSubject, []byte(body), opts...); err != nil {
		b.t.Fatalf("publish: %v", err)
	}
}

// command publishes a well-formed command with Nats-Msg-Id = command id.
func (b *bundle) command(id, actor string, sim map[string]any) {
	b.t.Helper()
	body, err := json.Marshal(map[string]any{"command_id": id, "actor_id": actor, "sim": sim})
	if err != nil {
		b.t.Fatal(err)
	}
	b.publish(string(body), id)
}

// seen is a copy of the events seen so far.
func (b *bundle) seen() []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]event(nil), b.events...)
}

// waitEvents waits until at least n publishes were seen and returns them all.
func (b *bundle) waitEvents(n int) []event {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := b.seen()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("saw %d events, want %d, within 30s", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventFor waits for the (first) event about a command id.
func (b *bundle) eventFor(commandID string) event {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		for _, e := range b.events {
			if e.CommandID == commandID {
				b.mu.Unlock()
				return e
			}
		}
		b.mu.Unlock()
		if time.Now().After(deadline) {
			b.t.Fatalf("no event for command %q within 30s", commandID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drained waits until the durable consumer has nothing pending or unacked.
func (b *bundle) drained() {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := b.cons.Info(context.Background())
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("consumer not drained within 30s: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamEvents returns the messages stored in SIM_EVENTS.
func (b *bundle) streamEvents() []event {
	b.t.Helper()
	var out []event
	for _, m := range consumertest.StreamMessages(b.t, b.js, client.EventsStream) {
		var ev event
		if err := json.Unmarshal(m.Data, &ev.CloudEvent); err != nil {
			b.t.Fatal(err)
		}
		ev.MsgID, ev.raw = m.Header.Get(jetstream.MsgIDHeader), m.Data
		out = append(out, ev)
	}
	return out
}

func (b *bundle) count(sql string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}
