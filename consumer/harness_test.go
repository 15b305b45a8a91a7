package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/app"
	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/internal/testfactory"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

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
	return setupWith(t, devstack.NATSOptions{})
}

// setupWith is setup on a JetStream server started with o.
func setupWith(t *testing.T, o devstack.NATSOptions) *bundle {
	t.Helper()
	pool, dbURL := repotest.NewDB(t)
	repotest.Load(t, pool, testfactory.World())
	b := &bundle{t: t, pool: pool, dbURL: dbURL}
	b.ns, b.nc, b.js = consumertest.NATSWith(t, o, client.StreamConfig{AckWait: 5 * time.Second})
	cons, err := b.js.Consumer(context.Background(), client.CommandsStream, client.DurableName)
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

// startApp runs a worker, with its own NATS connection, handing its
// commands to a, until the test ends.
func (b *bundle) startApp(a *app.App, cfg consumer.Config) {
	b.t.Helper()
	js, err := jetstream.New(consumertest.Connect(b.t, b.ns.URL))
	if err != nil {
		b.t.Fatal(err)
	}
	consumertest.WorkerFor(b.t, js, a, cfg, nil)
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

// command publishes a valid command of u-alice for device d-1 (the
// factory's defaults) with Nats-Msg-Id = command id.
func (b *bundle) command(id, iccid string) {
	b.t.Helper()
	c := testfactory.Command{ID: id, Sim: testfactory.Sim{ICCID: iccid}}
	b.publish(string(c.Body()), id)
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

// outages counts what a worker does that the tests wait on: outcomes
// published, back-offs on an outage, dead letters.
type outages struct {
	unavailable, deadLetters, outcomes atomic.Int64
}

func (o *outages) Outcome(domain.Outcome, time.Duration) { o.outcomes.Add(1) }
func (o *outages) Redelivered()                          {}
func (o *outages) DeadLetter()                           { o.deadLetters.Add(1) }
func (o *outages) Unavailable()                          { o.unavailable.Add(1) }
func (o *outages) AckFailed()                            {}

// until waits, up to 30 s, for cond; what names it in the failure.
func (b *bundle) until(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
