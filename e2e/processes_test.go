package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/internal/devstack"
	"simworker/internal/testfactory"
	"simworker/repo/repotest"
)

// TestTwoProcessesExactlyOneOutcomeEach runs two `simworker run` processes on
// one consumer, publishes a batch where every ICCID is wanted twice, and
// checks every command has exactly one outcome, ICCIDs are stored once, both
// processes did work, and SIGTERM makes both exit 0.
func TestTwoProcessesExactlyOneOutcomeEach(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	dbURL, pool := newDatabase(t, "two_processes")
	repotest.LoadDemo(t, pool)
	ns, err := devstack.StartNATS(devstack.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	env := []string{"NATS_URL=" + ns.URL, "DATABASE_URL=" + dbURL, "SIM_LOG_LEVEL=info", "SIM_HTTP_ADDR=127.0.0.1:0", "SIM_BATCH_SIZE=17"}
	p1, p2 := startProc(t, env...), startProc(t, env...)

	w := &world{t: t}
	if w.nc, err = natsConnect(ns.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nc.Close)
	w.js, _ = jetstream.New(w.nc)
	// Both workers pull before anything is published.
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := w.js.Consumer(ctx, client.CommandsStream, client.DurableName)
		if err == nil && c.CachedInfo().NumWaiting >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two workers never pulled at once:\n%s\n%s", p1.output(), p2.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 400
	for i := 0; i < n; i++ {
		actor := "u-alice"
		if i%17 == 0 {
			actor = "u-bob"
		}
		body := testfactory.Command{ID: fmt.Sprintf("p-%d", i), Actor: actor, Sim: testfactory.Sim{ICCID: fmt.Sprintf("89440000%011d", i/2)}}.Body()
		if _, err := w.js.PublishAsync(client.CreateSubject, body, jetstream.WithMsgID(fmt.Sprintf("p-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-w.js.PublishAsyncComplete()
	if !w.drained(time.Minute) {
		t.Fatal("not drained")
	}
	got, noID := w.outcomes()
	created := 0
	for id, r := range got {
		if len(r.eventIDs) != 1 {
			t.Fatalf("command %s has %d outcomes", id, len(r.eventIDs))
		}
		if r.created {
			created++
		}
	}
	if len(got) != n || len(noID) != 0 {
		t.Fatalf("%d outcomes for %d commands", len(got), n)
	}
	var rows, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT iccid) FROM sims`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != created || rows != distinct {
		t.Fatalf("sims rows %d, distinct ICCIDs %d, created events %d", rows, distinct, created)
	}
	for i, p := range []*proc{p1, p2} {
		if err := p.stop(40 * time.Second); err != nil {
			t.Fatalf("worker %d after SIGTERM: %v\n%s", i+1, err, p.output())
		}
		out, _ := os.ReadFile(p.log)
		if !bytes.Contains(out, []byte(`"batch published"`)) {
			t.Errorf("worker %d published no outcome: the two did not share the work", i+1)
		}
	}
}
