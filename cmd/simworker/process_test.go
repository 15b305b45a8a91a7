package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/consumer"
	"simworker/consumer/natslocal"
	"simworker/deploy"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds simworker once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "simworker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "simworker")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running `simworker run`.
type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func startProc(t *testing.T, natsURL, dbURL string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), "run", "-batch-size", "17")
	cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=info", "SIM_HTTP_ADDR=127.0.0.1:0")
	p := &proc{cmd: cmd, out: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// TestTwoProcessesExactlyOneOutcomeEach runs two `simworker run` processes on
// one consumer, publishes a mixed batch, and checks every command has exactly
// one outcome, ICCIDs are stored once, and SIGTERM makes both exit 0.
func TestTwoProcessesExactlyOneOutcomeEach(t *testing.T) {
	t.Parallel()
	pool, dbURL := repotest.NewDB(t)
	repotest.LoadFixtures(t, pool, string(deploy.DemoFixtures))
	ns, err := natslocal.Start(natslocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)

	p1 := startProc(t, ns.URL, dbURL)
	p2 := startProc(t, ns.URL, dbURL)

	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	// Wait until a worker has created the streams.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := js.Stream(ctx, consumer.CommandsStream); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams not created; worker output:\n%s\n%s", p1.out, p2.out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cons, err := js.Consumer(ctx, consumer.CommandsStream, consumer.DurableName)
	for err != nil || !bothPulling(ctx, cons) {
		if time.Now().After(deadline) {
			t.Fatalf("two workers never pulled at once; output:\n%s\n%s", p1.out, p2.out)
		}
		time.Sleep(50 * time.Millisecond)
		cons, err = js.Consumer(ctx, consumer.CommandsStream, consumer.DurableName)
	}

	const n = 400
	for i := 0; i < n; i++ {
		ic := fmt.Sprintf("89440000%011d", i/2) // every ICCID twice
		actor := "u-alice"
		if i%17 == 0 {
			actor = "u-bob"
		}
		body, _ := json.Marshal(map[string]any{"command_id": fmt.Sprintf("p-%d", i), "actor_id": actor,
			"sim": map[string]any{"device_id": "d-1", "iccid": ic}})
		if _, err := js.PublishAsync(consumer.CreateSubject, body, jetstream.WithMsgID(fmt.Sprintf("p-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()

	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	events, err := js.Stream(ctx, consumer.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := events.Info(ctx)
	outcomes := map[string]string{}
	created := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := events.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct{ ID, Type, CommandID string }
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if prev, ok := outcomes[ev.CommandID]; ok && prev != ev.ID {
			t.Fatalf("command %s has two outcomes", ev.CommandID)
		}
		outcomes[ev.CommandID] = ev.ID
		if ev.Type == "sim.created" {
			created++
		}
	}
	if len(outcomes) != n {
		t.Fatalf("%d outcomes for %d commands", len(outcomes), n)
	}
	var rows, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT iccid) FROM sims`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != created || rows != distinct {
		t.Fatalf("sims rows %d, distinct ICCIDs %d, created events %d", rows, distinct, created)
	}

	for _, p := range []*proc{p1, p2} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	defer func() {
		for i, p := range []*proc{p1, p2} {
			if !bytes.Contains(p.out.Bytes(), []byte(`"outcome published"`)) {
				t.Errorf("worker %d published no outcome: the two did not share the work", i+1)
			}
		}
	}()
	for _, p := range []*proc{p1, p2} {
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("worker exit after SIGTERM: %v\n%s", err, p.out)
			}
		case <-time.After(40 * time.Second):
			t.Fatalf("worker did not exit after SIGTERM:\n%s", p.out)
		}
	}
}

// bothPulling reports whether two pull requests wait on the consumer: both
// workers are up.
func bothPulling(ctx context.Context, cons jetstream.Consumer) bool {
	info, err := cons.Info(ctx)
	return err == nil && info.NumWaiting >= 2
}
