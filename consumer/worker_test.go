package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"simworker/app"
	"simworker/client"
	"simworker/consumer"
	"simworker/domain"
	"simworker/internal/testfactory"
	"simworker/repo"
	"simworker/repo/repotest"
)

func iccid(n int) string { return fmt.Sprintf("89440000%011d", n) } // 19 digits

// TestCheckTable sends one command per row of the contract's check table
// (and the order between rows) and asserts the outcome event.
func TestCheckTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{})

	// A taken ICCID for check 7.
	b.command("c-first", iccid(7))
	if e := b.eventFor("c-first"); e.Type != domain.TypeCreated {
		t.Fatalf("setup command not created: %s", e.raw)
	}

	tests := []struct {
		name   string
		id     string
		body   string // raw body, for what no well-formed command says; empty means cmd's
		cmd    testfactory.Command
		status int
		code   domain.Code
		fields []string
	}{
		{name: "1 body not JSON", body: `this is not json`, status: 400, code: "invalid_argument"},
		{name: "1 body a JSON array", body: `[1,2]`, status: 400, code: "invalid_argument"},
		{name: "1 command_id missing", body: `{"actor_id":"u-alice","sim":{}}`, status: 400, code: "invalid_argument"},
		{name: "1 command_id not a string", body: `{"command_id":5,"actor_id":"u-alice"}`, status: 400, code: "invalid_argument"},
		{name: "1 command_id too long", body: `{"command_id":"` + strings.Repeat("c", 129) + `"}`, status: 400, code: "invalid_argument"},
		{name: "2 actor missing beats an invalid sim", id: "c-2a", body: `{"command_id":"c-2a","sim":5}`, status: 401, code: "unauthorized"},
		{name: "2 actor empty", id: "c-2b", body: `{"command_id":"c-2b","actor_id":"","sim":{"device_id":"d-1","iccid":"` + iccid(20) + `"}}`, status: 401, code: "unauthorized"},
		{name: "3 sim not an object", id: "c-3a", body: `{"command_id":"c-3a","actor_id":"u-alice","sim":"x"}`, status: 400, code: "invalid_argument", fields: []string{"sim"}},
		{name: "3 every field error listed", id: "c-3b", body: `{"command_id":"c-3b","actor_id":"u-alice","sim":{"iccid":"123","msisdn":"` + strings.Repeat("1", 21) + `"}}`,
			status: 400, code: "invalid_argument", fields: []string{"device_id", "iccid", "msisdn"}},
		{name: "3 invalid sim beats a missing device", id: "c-3c", cmd: testfactory.Command{Sim: testfactory.Sim{DeviceID: "d-none", ICCID: "1"}},
			status: 400, code: "invalid_argument", fields: []string{"iccid"}},
		{name: "4 device not found", id: "c-4a", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-none", ICCID: iccid(41)}},
			status: 404, code: "not_found", fields: []string{"device_id"}},
		{name: "4 missing device beats no permission", id: "c-4b", cmd: testfactory.Command{Actor: "u-nobody", Sim: testfactory.Sim{DeviceID: "d-none", ICCID: iccid(42)}},
			status: 404, code: "not_found", fields: []string{"device_id"}},
		{name: "5 unknown actor", id: "c-5a", cmd: testfactory.Command{Actor: "u-nobody", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(51)}}, status: 401, code: "unauthorized"},
		{name: "5 actor with another permission only", id: "c-5b", cmd: testfactory.Command{Actor: "u-bob", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(52)}}, status: 401, code: "unauthorized"},
		{name: "5 grant on another tree", id: "c-5c", cmd: testfactory.Command{Actor: "u-gina", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(53)}}, status: 401, code: "unauthorized"},
		{name: "5 grant on a descendant does not cover the parent", id: "c-5d", cmd: testfactory.Command{Actor: "u-eve", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(54)}}, status: 401, code: "unauthorized"},
		{name: "5 no permission beats a bad MNO integration", id: "c-5e", cmd: testfactory.Command{Actor: "u-bob", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(55), MNOIntegrationID: testfactory.Ptr("m-none")}}, status: 401, code: "unauthorized"},
		{name: "6 MNO integration not found", id: "c-6a", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(61), MNOIntegrationID: testfactory.Ptr("m-none")}},
			status: 404, code: "not_found", fields: []string{"mno_integration_id"}},
		{name: "6 MNO integration of another tree", id: "c-6b", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(62), MNOIntegrationID: testfactory.Ptr("m-globex")}},
			status: 404, code: "not_found", fields: []string{"mno_integration_id"}},
		{name: "6 MNO integration of a descendant company", id: "c-6c", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(63), MNOIntegrationID: testfactory.Ptr("m-acme-eu")}},
			status: 404, code: "not_found", fields: []string{"mno_integration_id"}},
		{name: "6 bad MNO integration beats a taken ICCID", id: "c-6d", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(7), MNOIntegrationID: testfactory.Ptr("m-none")}},
			status: 404, code: "not_found", fields: []string{"mno_integration_id"}},
		{name: "7 ICCID taken", id: "c-7a", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(7)}},
			status: 400, code: "already_exists", fields: []string{"iccid"}},
		{name: "created: grant on the parent", id: "c-ok1", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(101)}}, status: 201},
		{name: "created: grant on the grandparent", id: "c-ok2", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-eu", ICCID: iccid(102)}}, status: 201},
		{name: "created: grant on the company itself", id: "c-ok3", cmd: testfactory.Command{Actor: "u-eve", Sim: testfactory.Sim{DeviceID: "d-eu", ICCID: iccid(103)}}, status: 201},
		{name: "created: MNO integration of an ancestor", id: "c-ok4", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-eu", ICCID: iccid(104), MNOIntegrationID: testfactory.Ptr("m-reseller")}}, status: 201},
		{name: "created: MNO integration of the company", id: "c-ok5", cmd: testfactory.Command{Actor: "u-alice", Sim: testfactory.Sim{DeviceID: "d-1", ICCID: iccid(105), MNOIntegrationID: testfactory.Ptr("m-acme")}}, status: 201},
	}
	for i := range tests {
		tt := &tests[i]
		if tt.body == "" {
			tt.cmd.ID = tt.id
			tt.body = string(tt.cmd.Body())
		}
		b.publish(tt.body, "")
	}
	all := b.waitEvents(1 + len(tests))
	// Events without a command id are matched by their message: one each.
	var noID []event
	for _, e := range all {
		if e.CommandID == "" {
			noID = append(noID, e)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e event
			if tt.id == "" {
				if len(noID) == 0 {
					t.Fatal("no event without a command id left")
				}
				e, noID = noID[0], noID[1:]
				if e.Subject != "" {
					t.Fatalf("subject %q on an event without a command id", e.Subject)
				}
			} else {
				e = b.eventFor(tt.id)
			}
			if e.SpecVersion != "1.0" || e.Source != "simworker" || e.DataContentType != "application/json" ||
				e.MsgID != e.ID || e.ID == "" {
				t.Fatalf("envelope attributes: %s (msg id %q)", e.raw, e.MsgID)
			}
			if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
				t.Fatalf("time %q: %v", e.Time, err)
			}
			conforms(t, e.Type, e.raw)
			if tt.status == 201 {
				conforms(t, "command", []byte(tt.body))
			}
			if tt.status == 201 {
				if e.Type != domain.TypeCreated {
					t.Fatalf("want created, got %s", e.raw)
				}
				if e.Subject != e.sim(t)["id"] {
					t.Fatalf("subject %q is not the SIM id", e.Subject)
				}
				return
			}
			if e.Type != domain.TypeRejected {
				t.Fatalf("want rejected, got %s", e.raw)
			}
			r := e.rejection(t)
			if r.Status != tt.status || r.Code != tt.code || r.CommandID != tt.id || e.CommandID != tt.id {
				t.Fatalf("got %d %s for %q, want %d %s: %s", r.Status, r.Code, r.CommandID, tt.status, tt.code, e.raw)
			}
			if tt.id != "" && e.Subject != tt.id {
				t.Fatalf("subject %q, want the command id", e.Subject)
			}
			if r.Errors == nil {
				t.Fatal("errors must be an array")
			}
			var fields []string
			for _, f := range r.Errors {
				fields = append(fields, f.Field)
			}
			if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields %v, want %v", fields, tt.fields)
			}
		})
	}
	b.drained()
	if got, want := b.count(`SELECT count(*) FROM sims`), 6; got != want {
		t.Fatalf("sims rows = %d, want %d", got, want)
	}
}

// TestCreatedRecord checks the stored record and the event data: company
// inherited from the device, defaults, server-managed fields ignored, exact
// metadata numbers.
func TestCreatedRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startApp(app.New(repo.New(b.pool), "urn:test"), consumer.Config{})
	b.publish(`{"command_id":"c-rec","actor_id":"u-alice","sim":{"device_id":"d-eu","iccid":"`+iccid(1)+`",
	  "company_id":"co-globex","id":"not-a-uuid","sim_barred":true,"ctd_data_usage":99,"created_by":"mallory","colour":"red",
	  "msisdn":"4915112345678","rate_plan":"Flex 1GB",
	  "sim_metadata":{"big":12345678901234567890,"tenth":0.1,"nested":{"list":[1,2.50,"x"]}}}}`, "c-rec")
	e := b.eventFor("c-rec")
	if e.Type != domain.TypeCreated || e.Source != "urn:test" {
		t.Fatalf("event: %s", e.raw)
	}
	conforms(t, domain.TypeCreated, e.raw)
	d := e.sim(t)
	want := map[string]any{
		"company_id": "co-acme-eu", "device_id": "d-eu", "iccid": iccid(1), "status": "inactive",
		"msisdn": "4915112345678", "rate_plan": "Flex 1GB", "communication_plan": nil, "mno_integration_id": nil,
		"ctd_data_usage": json.Number("0"), "ctd_sms_usage": json.Number("0"), "included_usage": json.Number("0"),
		"overage_limit_reached": false, "sim_barred": false, "last_sync_at": nil,
		"created_by": "u-alice", "updated_by": "u-alice",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("data.%s = %#v, want %#v", k, d[k], v)
		}
	}
	if _, err := uuid.Parse(d["id"].(string)); err != nil {
		t.Errorf("id %v is not a UUID", d["id"])
	}
	if d["created_at"] != d["updated_at"] {
		t.Errorf("updated_at %v != created_at %v", d["updated_at"], d["created_at"])
	}
	md := d["sim_metadata"].(map[string]any)
	if md["big"] != json.Number("12345678901234567890") || md["tenth"] != json.Number("0.1") {
		t.Errorf("metadata numbers not exact: %s", e.Data)
	}
	// The stored row says the same.
	var big, tenth, company string
	if err := b.pool.QueryRow(context.Background(),
		`SELECT sim_metadata->>'big', sim_metadata->>'tenth', company_id FROM sims WHERE iccid = $1`, iccid(1)).
		Scan(&big, &tenth, &company); err != nil {
		t.Fatal(err)
	}
	if big != "12345678901234567890" || tenth != "0.1" || company != "co-acme-eu" {
		t.Fatalf("stored: big=%s tenth=%s company=%s", big, tenth, company)
	}
}

// TestReplayAndRedelivery: the same command delivered again (a replay past
// the duplicate window, or a redelivery) re-publishes the stored outcome
// unchanged and creates nothing; a different payload under the same command
// id gets the original outcome.
func TestReplayAndRedelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{})
	cmd := `{"command_id":"c-r","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"` + iccid(5) + `"}}`
	b.publish(cmd, "first")
	first := b.eventFor("c-r")
	// Distinct Nats-Msg-Ids so JetStream's duplicate window lets them in.
	b.publish(cmd, "second")
	b.publish(`{"command_id":"c-r","actor_id":"u-bob","sim":{"device_id":"d-1","iccid":"1"}}`, "third")
	all := b.waitEvents(3)
	for _, e := range all {
		if e.ID != first.ID || string(e.raw) != string(first.raw) {
			t.Fatalf("re-published outcome differs:\n%s\n%s", first.raw, e.raw)
		}
	}
	b.drained()
	if n := b.count(`SELECT count(*) FROM sims`); n != 1 {
		t.Fatalf("sims rows = %d, want 1", n)
	}
	// JetStream kept one copy: the re-publishes carried the same Nats-Msg-Id.
	if got := b.streamEvents(); len(got) != 1 {
		t.Fatalf("SIM_EVENTS holds %d events, want 1", len(got))
	}

	// A rejected command is stored too: fixing the payload does not change it.
	b.publish(`{"command_id":"c-bad","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"123"}}`, "")
	bad := b.eventFor("c-bad")
	b.publish(`{"command_id":"c-bad","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"`+iccid(6)+`"}}`, "")
	again := b.waitEvents(5)[4]
	if again.ID != bad.ID || again.Type != domain.TypeRejected {
		t.Fatalf("same command id, new payload: got %s, want the original %s", again.raw, bad.raw)
	}
}

// TestOutcomeStoredBeforeCrash: a worker that stored an outcome and died
// before publishing it leaves the redelivery to publish that very outcome.
func TestOutcomeStoredBeforeCrash(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"command_id":"c-crash","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"` + iccid(9) + `"}}`
	store := app.New(repo.New(b.pool), "")
	outs, err := store.Handle(context.Background(), []domain.Envelope{domain.ParseCommand([]byte(body))})
	if err != nil {
		t.Fatal(err)
	}
	b.publish(body, "c-crash")
	b.startWorker(consumer.Config{})
	e := b.eventFor("c-crash")
	if e.ID != outs[0].EventID || string(e.raw) != string(outs[0].Event) {
		t.Fatalf("published %s, stored %s", e.raw, outs[0].Event)
	}
	b.drained()
	if n := b.count(`SELECT count(*) FROM sims`); n != 1 {
		t.Fatalf("sims rows = %d", n)
	}
}

// TestNoCommandIDEventIsStable: a body without a command id gets a rejection
// whose id derives from its stream position, distinct per message.
func TestNoCommandIDEventIsStable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{})
	b.publish(`garbage`, "")
	b.publish(`garbage`, "")
	all := b.waitEvents(2)
	if all[0].ID == all[1].ID {
		t.Fatal("two messages without command id share an event id")
	}
	for _, e := range all {
		if e.CommandID != "" || e.Subject != "" || e.rejection(t).Code != domain.CodeInvalidArgument {
			t.Fatalf("event %s", e.raw)
		}
	}
}

// TestTwoWorkersOneOutcomeEach: two workers on the durable consumer, a mixed
// batch with ICCID clashes and repeated commands: every command gets exactly
// one distinct outcome, every ICCID is stored once.
func TestTwoWorkersOneOutcomeEach(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{BatchSize: 7})
	b.startWorker(consumer.Config{BatchSize: 13})
	const n = 300
	for i := 0; i < n; i++ {
		// 1 in 3 reuses an earlier ICCID; 1 in 10 is invalid.
		ic := iccid(i)
		if i%3 == 2 {
			ic = iccid(i - 1)
		}
		if i%10 == 9 {
			ic = "bad"
		}
		id := fmt.Sprintf("c-%03d", i)
		b.command(id, ic)
		if i%25 == 0 { // the same command again, outside JetStream de-duplication
			b.publish(fmt.Sprintf(`{"command_id":%q,"actor_id":"u-alice","sim":{"device_id":"d-1","iccid":%q}}`, id, ic), id+"-again")
		}
	}
	b.drained()
	ids := map[string]map[string]bool{}
	created := 0
	for _, e := range b.streamEvents() {
		if ids[e.CommandID] == nil {
			ids[e.CommandID] = map[string]bool{}
		}
		ids[e.CommandID][e.ID] = true
		if e.Type == domain.TypeCreated {
			created++
		}
	}
	if len(ids) != n {
		t.Fatalf("%d commands have outcomes, want %d", len(ids), n)
	}
	for id, evs := range ids {
		if len(evs) != 1 {
			t.Fatalf("command %s has %d distinct outcomes", id, len(evs))
		}
	}
	if rows := b.count(`SELECT count(*) FROM sims`); rows != created {
		t.Fatalf("sims rows %d, created events %d", rows, created)
	}
	if d := b.count(`SELECT count(*) FROM (SELECT iccid FROM sims GROUP BY iccid HAVING count(*) > 1) x`); d != 0 {
		t.Fatalf("%d ICCIDs stored twice", d)
	}
}

// TestRaceOnOneICCID: many commands for one ICCID, decided concurrently by
// two workers and by concurrent transactions: exactly one is created.
func TestRaceOnOneICCID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{BatchSize: 1})
	b.startWorker(consumer.Config{BatchSize: 1})
	const n = 40
	for i := 0; i < n; i++ {
		b.command(fmt.Sprintf("c-race-%d", i), iccid(77))
	}
	b.drained()
	created, exists := 0, 0
	for _, e := range b.streamEvents() {
		switch {
		case e.Type == domain.TypeCreated:
			created++
		case e.rejection(t).Code == domain.CodeAlreadyExists:
			exists++
		}
	}
	if created != 1 || exists != n-1 {
		t.Fatalf("created %d, already_exists %d; want 1 and %d", created, exists, n-1)
	}

	// The same race straight at the store: transactions that overlap.
	store := app.New(repo.New(b.pool), "")
	var wg sync.WaitGroup
	results := make([]domain.Outcome, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := domain.ParseCommand([]byte(fmt.Sprintf(
				`{"command_id":"tx-%d","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":%q}}`, i, iccid(88))))
			outs, err := store.Handle(context.Background(), []domain.Envelope{env})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = outs[0]
		}()
	}
	wg.Wait()
	created = 0
	for _, o := range results {
		if o.Type == domain.TypeCreated {
			created++
		} else if o.Code != domain.CodeAlreadyExists {
			t.Fatalf("unexpected outcome %+v", o)
		}
	}
	if created != 1 {
		t.Fatalf("created %d of one ICCID", created)
	}
}

// TestGracefulStop: Run returns nil on cancel, and commands published after
// it stopped wait for the next worker.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	stop := b.startWorker(consumer.Config{})
	b.command("c-before", iccid(1))
	b.eventFor("c-before")
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	b.command("c-after", iccid(2))
	// Run has returned: nothing of the worker can publish any more, however
	// long one waits.
	if got := len(b.seen()); got != 1 {
		t.Fatalf("%d events after stop, want 1", got)
	}
	b.startWorker(consumer.Config{})
	if e := b.eventFor("c-after"); e.Type != domain.TypeCreated {
		t.Fatalf("after restart: %s", e.raw)
	}
}

// TestPostgresOutageIsNotAnOutcome: commands sent while the database refuses
// work wait and then succeed; none is rejected for the outage.
func TestPostgresOutageIsNotAnOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// Refuse connections to this test's database only.
	restore := repotest.RefuseConnections(t, repotest.ServerURL(t), b.dbURL)
	obs := &outages{}
	b.startWorker(consumer.Config{RetryWindow: 500 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Observer: obs})
	for i := 0; i < 5; i++ {
		b.command(fmt.Sprintf("c-out-%d", i), iccid(300+i))
	}
	// The worker met the outage and backed off, several times, past a retry
	// window (its batch handed back and taken again).
	b.until("five back-offs", func() bool { return obs.unavailable.Load() >= 5 })
	early := len(b.seen())
	if early != 0 {
		t.Fatalf("%d outcomes published while the database was down", early)
	}
	restore()
	for i := 0; i < 5; i++ {
		if e := b.eventFor(fmt.Sprintf("c-out-%d", i)); e.Type != domain.TypeCreated {
			t.Fatalf("after the outage: %s", e.raw)
		}
	}
	// The outage never took the poison path.
	dl, err := b.js.Stream(ctx, client.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := dl.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d dead letters from an outage", n)
	}
}

// TestPoisonCommand: a command that fails unexpectedly (here a trigger
// raising an error, a real PostgreSQL failure that is no outage) is retried a
// bounded number of times, then gets a 500 internal and a dead letter; the
// commands around it, in the same batch, are decided normally.
func TestPoisonCommand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	poison := iccid(666)
	if _, err := b.pool.Exec(ctx, `
		CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.iccid = '`+poison+`' THEN RAISE EXCEPTION 'simulated bug for %', NEW.iccid; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER explode BEFORE INSERT ON sims FOR EACH ROW EXECUTE FUNCTION explode();`); err != nil {
		t.Fatal(err)
	}
	// Publish before the worker starts so the three land in one batch.
	b.command("c-before", iccid(1))
	b.command("c-poison", poison)
	b.command("c-after", iccid(2))
	b.startWorker(consumer.Config{PoisonRetries: 2})

	for _, id := range []string{"c-before", "c-after"} {
		if e := b.eventFor(id); e.Type != domain.TypeCreated {
			t.Fatalf("%s: %s", id, e.raw)
		}
	}
	e := b.eventFor("c-poison")
	conforms(t, domain.TypeRejected, e.raw)
	r := e.rejection(t)
	if r.Status != 500 || r.Code != domain.CodeInternal || len(r.Errors) != 0 {
		t.Fatalf("poison outcome: %s", e.raw)
	}
	if strings.Contains(r.Message, "simulated bug") {
		t.Fatalf("internal details leaked into the event: %s", r.Message)
	}
	b.drained()

	dl, err := b.js.Stream(ctx, client.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.GetLastMsgForSubject(ctx, client.DeadLetterSubject)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if m.Header.Get(client.HeaderCommandID) != "c-poison" || !strings.Contains(m.Header.Get(client.HeaderError), "simulated bug") ||
		m.Header.Get(client.HeaderOrigSeq) != "2" || !strings.Contains(string(m.Data), poison) {
		t.Fatalf("dead letter: %v %s", m.Header, m.Data)
	}

	// The 500 is the command's outcome from now on.
	b.publish(`{"command_id":"c-poison","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"`+iccid(3)+`"}}`, "again")
	all := b.waitEvents(4)
	if all[3].ID != e.ID {
		t.Fatalf("replay of the poison command: %s", all[3].raw)
	}
}

// TestSlowTransactionOutlastsAckWait: while one worker's transaction for a
// command is stuck, the same command reaches a second worker (as a
// redelivery after AckWait, or a replay, would bring it). The second must
// wait for the first and publish the same outcome; one SIM row.
func TestSlowTransactionOutlastsAckWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// Hold a lock that the SIM insert waits for.
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE sims IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	obs1, obs2 := &outages{}, &outages{}
	b.startWorker(consumer.Config{BatchSize: 1, Concurrency: 1, Observer: obs1})
	b.startWorker(consumer.Config{BatchSize: 1, Concurrency: 1, Observer: obs2})
	b.command("c-slow", iccid(4))
	// The second delivery of the same command, under another message id.
	b.publish(fmt.Sprintf(`{"command_id":"c-slow","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":%q}}`, iccid(4)), "c-slow-again")

	// Both are in flight, each in its own stuck transaction.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := b.cons.Info(ctx)
		if err == nil && info.NumAckPending == 2 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two deliveries never were in flight together: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ... both waiting on the lock.
	b.until("both transactions waiting on the lock", func() bool {
		var waiting int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting == 2
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	b.drained()
	// Each delivery's outcome was published (the workers count a publish
	// once JetStream took it; a redelivery publishes it again): every one of
	// those publishes reaches the subscription, and they must be one event.
	published := func() int { return int(obs1.outcomes.Load() + obs2.outcomes.Load()) }
	b.until("both deliveries' outcomes published and seen", func() bool { return published() >= 2 && len(b.seen()) == published() })
	all := b.seen()
	for _, e := range all {
		if e.ID != all[0].ID || e.Type != domain.TypeCreated {
			t.Fatalf("different outcomes for one command:\n%s\n%s", all[0].raw, e.raw)
		}
	}
	if n := b.count(`SELECT count(*) FROM sims`); n != 1 {
		t.Fatalf("sims rows = %d", n)
	}
	if got := b.streamEvents(); len(got) != 1 {
		t.Fatalf("SIM_EVENTS holds %d events", len(got))
	}
}

// TestSchemaDriftIsAnOutage: a database that no longer matches the worker (a
// column renamed by hand, a migration gone wrong) is an operator's problem:
// commands wait, none gets a stored 500, and they are decided once it is
// repaired.
func TestSchemaDriftIsAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `ALTER TABLE sims RENAME COLUMN rate_plan TO rate_plan_old`); err != nil {
		t.Fatal(err)
	}
	obs := &outages{}
	b.startWorker(consumer.Config{RetryWindow: 500 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PoisonRetries: 1, Observer: obs})
	b.command("c-drift", iccid(21))
	// More back-offs than the poison layer's retries: the outage never
	// turned into a 500.
	b.until("five back-offs", func() bool { return obs.unavailable.Load() >= 5 })
	early := len(b.seen())
	if early != 0 {
		t.Fatalf("%d outcomes while the schema was broken", early)
	}
	if _, err := b.pool.Exec(ctx, `ALTER TABLE sims RENAME COLUMN rate_plan_old TO rate_plan`); err != nil {
		t.Fatal(err)
	}
	if e := b.eventFor("c-drift"); e.Type != domain.TypeCreated {
		t.Fatalf("after the repair: %s", e.raw)
	}
}
