package repo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/app"
	"simworker/domain"
	"simworker/internal/testfactory"
	"simworker/repo"
	"simworker/repo/repotest"
)

// batchFixtures: a tree co-root > co-a > co-a1 and a separate co-other;
// u-root may create SIMs on the whole tree, u-a1 on co-a1 only, u-none
// nowhere; a device and an MNO integration at several levels.
func batchFixtures() *domain.Fixtures {
	f := &domain.Fixtures{}
	return f.Company("co-root", "").Company("co-a", "co-root").Company("co-a1", "co-a").Company("co-other", "").
		User("u-root").User("u-a1").User("u-none").
		Grant("u-root", "co-root", domain.PermissionCreateSIM).Grant("u-a1", "co-a1", domain.PermissionCreateSIM).
		Device("d-a", "co-a").Device("d-a1", "co-a1").Device("d-other", "co-other").
		MNOIntegration("m-root", "co-root").MNOIntegration("m-a1", "co-a1").MNOIntegration("m-other", "co-other")
}

// mixedEnvelopes is a batch with every outcome and the tricky orders: a
// command id twice, an ICCID wanted by a command that fails its checks and
// then by one that passes, an ICCID wanted by three, an ICCID stored before.
func mixedEnvelopes() []domain.Envelope {
	ic := func(n int) string { return fmt.Sprintf("8949%015d", n) }
	var cmds []testfactory.Command
	add := func(id, actor, device string, iccid string, mno ...string) *testfactory.Command {
		c := testfactory.Command{ID: id, Actor: actor, Sim: testfactory.Sim{DeviceID: device, ICCID: iccid}}
		if len(mno) > 0 {
			c.Sim.MNOIntegrationID = &mno[0]
		}
		cmds = append(cmds, c)
		return &cmds[len(cmds)-1]
	}
	add("ok-1", "u-root", "d-a", ic(1))
	ok2 := add("ok-2", "u-a1", "d-a1", ic(2), "m-root")
	ok2.Sim.Status, ok2.Sim.Metadata = testfactory.Ptr("active"), json.RawMessage(`{"n":12345678901234567890}`)
	add("bad-arg", "u-root", "d-a", "1")
	add("no-actor", "u-root", "d-a", ic(3)).Extra = map[string]any{"actor_id": ""}
	add("no-device", "u-root", "d-none", ic(4))
	add("no-grant", "u-none", "d-a", ic(5))
	add("grant-below", "u-a1", "d-a", ic(6))
	add("bad-mno", "u-root", "d-a", ic(7), "m-other")
	add("mno-below", "u-root", "d-a", ic(8), "m-a1")
	add("taken-before", "u-root", "d-a", ic(99))
	add("clash-fails-first", "u-none", "d-a", ic(10))
	add("clash-wins", "u-root", "d-a", ic(10))
	add("clash-loses", "u-root", "d-a1", ic(10))
	add("ok-1", "u-root", "d-a", ic(11)) // same command id, new payload
	add("three-1", "u-root", "d-a", ic(12))
	add("three-2", "u-root", "d-a", ic(12), "m-other")
	add("three-3", "u-root", "d-a1", ic(12))
	add("three-4", "u-root", "d-a1", ic(12))
	add("decided-before", "u-root", "d-a", ic(13))
	bodies := make([][]byte, len(cmds))
	for i, c := range cmds {
		bodies[i] = c.Body()
	}
	envs := make([]domain.Envelope, len(bodies))
	for i, b := range bodies {
		envs[i] = domain.ParseCommand(b)
	}
	return envs
}

// prepared is a database with the fixtures, one SIM stored before (ICCID
// ...99) and one command decided before.
func prepared(t *testing.T) (*pgxpool.Pool, *app.App) {
	pool, _ := repotest.NewDB(t)
	repotest.Load(t, pool, batchFixtures())
	store := app.New(repo.New(pool), "")
	for _, b := range []string{
		`{"command_id":"earlier","actor_id":"u-root","sim":{"device_id":"d-a","iccid":"8949000000000000099"}}`,
		`{"command_id":"decided-before","actor_id":"u-none","sim":{"device_id":"d-a","iccid":"8949000000000000098"}}`,
	} {
		if _, err := store.Handle(context.Background(), []domain.Envelope{domain.ParseCommand([]byte(b))}); err != nil {
			t.Fatal(err)
		}
	}
	return pool, store
}

// signature is what must match between the two ways of deciding.
func signature(t *testing.T, o domain.Outcome) string {
	t.Helper()
	var ev struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(o.Event, &ev); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "created_at", "updated_at"} {
		delete(ev.Data, k)
	}
	d, _ := json.Marshal(ev.Data)
	return fmt.Sprintf("%s %d %s replayed=%v %s", ev.Type, o.Status, o.Code, o.Replayed, d)
}

// batchSizes: a small batch, its rows written with one INSERT each, and
// one padded past that, written with COPY.
var batchSizes = []struct {
	name string
	pad  int
}{{"small", 0}, {"large", 2 * 64}}

// padded is envs with n valid commands of fresh ICCIDs after them: a batch
// large enough to be written with COPY rather than INSERT.
func padded(envs []domain.Envelope, n int) []domain.Envelope {
	for i := range n {
		envs = append(envs, domain.ParseCommand([]byte(fmt.Sprintf(
			`{"command_id":"pad-%d","actor_id":"u-root","sim":{"device_id":"d-a","iccid":"8949%015d"}}`, i, 5000+i))))
	}
	return envs
}

// TestBatchEqualsOneAtATime: a batch decides as the commands one at a time
// would, small (its rows inserted with one INSERT each) and large (with
// COPY); its ICCID stored before makes the optimistic insert fail and the
// batch decided again.
func TestBatchEqualsOneAtATime(t *testing.T) {
	t.Parallel()
	for _, size := range batchSizes {
		t.Run(size.name, func(t *testing.T) {
			t.Parallel()
			batchEqualsOneAtATime(t, padded(mixedEnvelopes(), size.pad))
		})
	}
}

func batchEqualsOneAtATime(t *testing.T, envs []domain.Envelope) {
	seqPool, _ := prepared(t)
	want := decideOneAtATime(t, seqPool, envs)
	batchPool, batchStore := prepared(t)
	got, err := batchStore.Handle(context.Background(), envs)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	for i := range envs {
		w, g := signature(t, want[i]), signature(t, got[i])
		if w != g {
			t.Errorf("%s:\n one at a time: %s\n batched:       %s", envs[i].CommandID, w, g)
		}
		codes[string(got[i].Code)+got[i].Type]++
	}
	// The batch covers every outcome.
	for _, c := range []string{"sim.created", "invalid_argumentsim.rejected", "unauthorizedsim.rejected", "not_foundsim.rejected", "already_existssim.rejected"} {
		if codes[c] == 0 {
			t.Errorf("the batch has no %s outcome", c)
		}
	}
	if t.Failed() {
		return
	}
	// The same command id twice in one batch: one outcome.
	if got[0].EventID != got[13].EventID {
		t.Fatal("a command id repeated in the batch got two outcomes")
	}
	// And the batch is idempotent: deciding it again returns what is stored.
	again, err := batchStore.Handle(context.Background(), envs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range envs {
		if again[i].EventID != got[i].EventID || string(again[i].Event) != string(got[i].Event) {
			t.Fatalf("%s: second run %s, first %s", envs[i].CommandID, again[i].Event, got[i].Event)
		}
	}
	var rows int
	if err := batchPool.QueryRow(context.Background(), `SELECT count(*) FROM sims`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	created := 1 // stored before
	for _, o := range got {
		if o.Type == domain.TypeCreated && !o.Replayed {
			created++
		}
	}
	if rows != created {
		t.Fatalf("sims rows %d, created %d", rows, created)
	}
}

// TestBatchRacesAnotherTransaction: another transaction decides one of the
// batch's commands and takes one of its ICCIDs while the batch is being
// decided, and commits only once the batch waits for it. The batch must then
// return that transaction's outcome for the command (its insert conflicts and
// the batch is decided again), reject the taken ICCID, and store everything
// else exactly once.
func TestBatchRacesAnotherTransaction(t *testing.T) {
	t.Parallel()
	for _, size := range batchSizes {
		t.Run(size.name, func(t *testing.T) {
			t.Parallel()
			batchRacesAnotherTransaction(t, size.pad)
		})
	}
}

func batchRacesAnotherTransaction(t *testing.T, pad int) {
	ctx := context.Background()
	pool, store := prepared(t)
	other, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	const otherEvent = `{"decided":"elsewhere"}`
	if _, err := other.Exec(ctx, `
		INSERT INTO processed_commands (command_id, event_id, event_type, status, code, event)
		VALUES ('race-decided', '0196f9a0-0000-7000-8000-000000000001', 'sim.rejected', 403, 'unauthorized', $1)`,
		[]byte(otherEvent)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, `
		INSERT INTO sims (id, company_id, device_id, iccid, status, created_at, created_by, updated_at, updated_by)
		VALUES ('0196f9a0-0000-7000-8000-000000000002', 'co-a', 'd-a', '8949000000000000201', 'active', now(), 'u-root', now(), 'u-root')`); err != nil {
		t.Fatal(err)
	}

	var envs []domain.Envelope
	for _, b := range []string{
		`{"command_id":"race-ok","actor_id":"u-root","sim":{"device_id":"d-a","iccid":"8949000000000000200"}}`,
		`{"command_id":"race-decided","actor_id":"u-root","sim":{"device_id":"d-a","iccid":"8949000000000000202"}}`,
		`{"command_id":"race-iccid","actor_id":"u-root","sim":{"device_id":"d-a","iccid":"8949000000000000201"}}`,
	} {
		envs = append(envs, domain.ParseCommand([]byte(b)))
	}
	envs = padded(envs, pad)
	type result struct {
		outs []domain.Outcome
		err  error
	}
	done := make(chan result, 1)
	go func() {
		outs, err := store.Handle(ctx, envs)
		done <- result{outs, err}
	}()
	// Commit the other transaction once the batch waits for one of its locks.
	for waiting := false; !waiting; {
		select {
		case r := <-done:
			t.Fatalf("the batch finished without waiting for the other transaction: %v %v", r.outs, r.err)
		default:
		}
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := map[string]domain.Outcome{}
	for _, o := range r.outs {
		got[o.CommandID] = o
	}
	if o := got["race-ok"]; o.Type != domain.TypeCreated || o.Replayed {
		t.Errorf("race-ok: %s replayed=%v, want a new sim.created", o.Type, o.Replayed)
	}
	if o := got["race-decided"]; string(o.Event) != otherEvent || !o.Replayed || o.EventID != "0196f9a0-0000-7000-8000-000000000001" {
		t.Errorf("race-decided: event %s id %s replayed=%v, want the other transaction's outcome", o.Event, o.EventID, o.Replayed)
	}
	if o := got["race-iccid"]; o.Code != domain.CodeAlreadyExists {
		t.Errorf("race-iccid: %s %s, want already_exists", o.Type, o.Code)
	}
	var outcomes, sims int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM processed_commands WHERE command_id LIKE 'race-%'),
		(SELECT count(*) FROM sims WHERE iccid IN ('8949000000000000200', '8949000000000000201', '8949000000000000202'))`).Scan(&outcomes, &sims); err != nil {
		t.Fatal(err)
	}
	if outcomes != 3 || sims != 2 {
		t.Fatalf("stored %d outcomes and %d SIMs, want 3 and 2", outcomes, sims)
	}
	for i := range pad {
		if o := got[fmt.Sprintf("pad-%d", i)]; o.Type != domain.TypeCreated {
			t.Fatalf("pad-%d: %s %s", i, o.Type, o.Code)
		}
	}
}
