package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"simworker/client"
	"simworker/consumer/consumertest"
	"simworker/domain"
	"simworker/internal/testfactory"
)

var (
	faultBinOnce sync.Once
	faultBin     string
	faultBinErr  error
)

// faultHookBinary builds simworker with the faulthook tag once: a worker
// that dies while deciding a command for device "faulthook-crash".
func faultHookBinary(t *testing.T) string {
	t.Helper()
	faultBinOnce.Do(func() {
		faultBin = filepath.Join(filepath.Dir(binPath), "simworker-faulthook")
		out, err := exec.Command("go", "build", "-tags", "faulthook", "-o", faultBin, "../cmd/simworker").CombinedOutput()
		if err != nil {
			faultBinErr = fmt.Errorf("build simworker -tags faulthook: %v\n%s", err, out)
		}
	})
	if faultBinErr != nil {
		t.Fatal(faultBinErr)
	}
	return faultBin
}

// TestCommandThatCrashesTheWorker: a command that kills the process that
// decides it, in the middle of a batch, with two workers that a supervisor
// restarts each time they die. The good commands of its batch are created;
// after SIM_POISON_CRASHES crashed attempts of its own it is dead-lettered
// with its 500 internal, and the workers stop dying.
func TestCommandThatCrashesTheWorker(t *testing.T) {
	skipShort(t)
	bin := faultHookBinary(t)
	w := newWorld(t, "command_crashes_worker", false)
	crashLog := filepath.Join(t.TempDir(), "crashes")
	env := append(append([]string(nil), w.env...), "SIM_FAULTHOOK_LOG="+crashLog, "SIM_POISON_CRASHES=3")
	const good = 150
	var msgs []message
	for i := range good + 1 {
		c := testfactory.Command{ID: fmt.Sprintf("k-%03d", i), Sim: testfactory.Sim{DeviceID: fmt.Sprintf("d-%d", i%50), ICCID: fmt.Sprintf("8977%015d", i)}}
		if i == good/2 {
			c.ID, c.Sim.DeviceID = "k-poison", "faulthook-crash"
		}
		msgs = append(msgs, message{body: c.Body(), msgID: c.ID, cmdID: c.ID})
	}
	w.publish(&batch{msgs: msgs})

	var workers []*proc
	for range 2 {
		p := &proc{t: t, sub: "run", env: env, log: filepath.Join(t.TempDir(), "run.log")}
		p.startBinary(bin)
		t.Cleanup(p.kill)
		workers = append(workers, p)
	}
	restarts := 0
	deadline := time.Now().Add(3 * time.Minute)
	for !w.drained(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not drained after %d restarts:\n%s", restarts, workers[0].output())
		}
		for _, p := range workers {
			if p.exited() {
				restarts++
				if restarts > 10 {
					t.Fatalf("the workers died %d times: the command is not isolated:\n%s", restarts, p.output())
				}
				p.startBinary(bin)
			}
		}
	}
	crashes := 0
	if b, err := os.ReadFile(crashLog); err == nil {
		crashes = strings.Count(string(b), "k-poison\n")
	}
	t.Logf("the poison command crashed a worker %d times; %d restarts", crashes, restarts)
	// One crash in its first batch, which is not counted, then three alone.
	if crashes != 4 {
		t.Errorf("the poison command crashed a worker %d times, want 4 (its batch, then SIM_POISON_CRASHES=3 alone)", crashes)
	}
	got, _ := w.outcomes()
	created := 0
	for i := range good + 1 {
		id := fmt.Sprintf("k-%03d", i)
		if i == good/2 {
			id = "k-poison"
		}
		r := got[id]
		switch {
		case r == nil:
			t.Errorf("%s: no outcome", id)
		case len(r.eventIDs) != 1:
			t.Errorf("%s: %d outcomes", id, len(r.eventIDs))
		case id == "k-poison" && r.code != domain.CodeInternal:
			t.Errorf("the poison command: %s, want 500 internal", r.signature)
		case id != "k-poison" && !r.created:
			t.Errorf("%s: %s, want created", id, r.signature)
		case r.created:
			created++
		}
	}
	if created != good {
		t.Errorf("%d of %d good commands created", created, good)
	}
	dl := consumertest.StreamMessages(t, w.js, client.DeadLetterStream)
	if len(dl) != 1 || dl[0].Header.Get(client.HeaderCommandID) != "k-poison" {
		t.Errorf("dead letters: %d, want the poison command alone", len(dl))
	}
	var marks int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM command_attempts`).Scan(&marks); err != nil || marks != 0 {
		t.Errorf("attempt marks left: %d (%v)", marks, err)
	}
	for _, p := range workers {
		if err := p.stop(40 * time.Second); err != nil {
			t.Errorf("worker: %v\n%s", err, p.output())
		}
	}
}
