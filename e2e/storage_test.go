package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/app"
	"simworker/client"
	"simworker/internal/devstack"
	"simworker/internal/testfactory"
	"simworker/repo"
	"simworker/repo/repotest"
)

// storageWorld is a worker (with its /readyz) on a database and a NATS
// server of the test's own, and the commands it has to decide.
type storageWorld struct {
	*world
	ops string // the worker's /readyz and /metrics
}

func validCommands(prefix string, n int) *batch {
	b := &batch{}
	for i := range n {
		c := testfactory.Command{ID: fmt.Sprintf("%s-%03d", prefix, i), Sim: testfactory.Sim{DeviceID: fmt.Sprintf("d-%d", i%50), ICCID: fmt.Sprintf("8966%015d", i)}}
		b.msgs = append(b.msgs, message{body: c.Body(), msgID: c.ID, cmdID: c.ID})
		b.commands++
	}
	return b
}

// readiness is the worker's /readyz: its status and the failing checks.
func readiness(t *testing.T, ops string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + ops + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Checks []struct {
			Name, Error string
			OK          bool
		}
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	var failing []string
	for _, c := range body.Checks {
		if !c.OK {
			failing = append(failing, c.Name+": "+c.Error)
		}
	}
	return resp.StatusCode, strings.Join(failing, "; ")
}

// waitBackingOff waits until the worker's /readyz says it is held up by an
// outage whose error holds want, and its metric says so too.
func waitBackingOff(t *testing.T, ops, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, failing := readiness(t, ops)
		if code == http.StatusServiceUnavailable && strings.Contains(failing, "deciding") && strings.Contains(failing, want) {
			if _, m := get(t, "http://"+ops+"/metrics"); !strings.Contains(m, "simworker_backing_off 1") {
				t.Fatalf("/readyz says %q but simworker_backing_off is not 1", failing)
			}
			return failing
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said the worker backs off because of %q (last: %d %s)", want, code, failing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// resumed waits until every command of b has its one outcome, created, the
// consumer drained, nothing dead-lettered, and the worker ready again.
func (w *storageWorld) resumed(b *batch) {
	w.t.Helper()
	if !w.drained(2 * time.Minute) {
		w.t.Fatalf("did not resume within 2 minutes:\n%s", w.workers[0].output())
	}
	got, _ := w.outcomes()
	for _, m := range b.msgs {
		if r := got[m.cmdID]; r == nil || len(r.eventIDs) != 1 || !r.created {
			w.t.Errorf("%s: %+v, want one sim.created", m.cmdID, r)
		}
	}
	if dl, err := w.js.Stream(context.Background(), client.DeadLetterStream); err != nil || dl.CachedInfo().State.Msgs != 0 {
		w.t.Errorf("dead letters from a full disk (or none: %v)", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for code, failing := readiness(w.t, w.ops); code != http.StatusOK; code, failing = readiness(w.t, w.ops) {
		if time.Now().After(deadline) {
			w.t.Fatalf("not ready again after resuming: %d %s", code, failing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestJetStreamStorageFull: the JetStream server's storage fills up while
// commands wait. The worker decides them but cannot publish their events:
// it backs off, /readyz and simworker_backing_off say why, the API answers
// 503, nothing is lost or turned into a rejection; once space returns it
// resumes by itself.
func TestJetStreamStorageFull(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	dbURL, pool := newDatabase(t, "jetstream_full")
	w := &world{t: t, name: "jetstream_full", dbURL: dbURL, pool: pool}
	repoLoad(t, w)
	node, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir(), MaxStore: 24 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Shutdown)
	w.natsURL = node.URL
	if w.nc, err = natsConnect(node.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nc.Close)
	w.js, _ = jetstream.New(w.nc)
	none := client.Limits{MaxAge: -1, MaxBytes: -1}
	if _, err := client.Setup(ctx, w.js, client.StreamConfig{AckWait: 2 * time.Second, Events: none, DeadLetter: none}); err != nil {
		t.Fatal(err)
	}
	b := validCommands("js", 300)
	w.publish(b)
	_, err = w.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 512<<10)
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		_, full = w.js.Publish(ctx, "filler.x", chunk)
	}
	if full == nil {
		t.Fatal("JetStream took 100 MiB into 24 MiB of storage")
	}
	t.Logf("JetStream full: %v", full)

	opsPort, _ := devstack.FreePort()
	apiPort, _ := devstack.FreePort()
	sw := &storageWorld{world: w, ops: "127.0.0.1:" + itoa(opsPort)}
	env := []string{"NATS_URL=" + node.URL, "DATABASE_URL=" + dbURL, "SIM_LOG_LEVEL=warn", "SIM_ACK_WAIT=2s",
		"SIM_MAX_BACKOFF=500ms", "SIM_RETRY_WINDOW=2s", "SIM_BATCH_SIZE=50"}
	w.workers = append(w.workers, startProc(t, append(env, "SIM_HTTP_ADDR="+sw.ops)...))
	startProcCmd(t, "api", append(env, "SIM_API_ADDR=127.0.0.1:"+itoa(apiPort), "SIM_HTTP_ADDR=off")...)
	t.Logf("while full: %s", waitBackingOff(t, sw.ops, "publish"))

	api503(t, token(t, pool), apiPort)
	if err := w.js.DeleteStream(ctx, "FILLER"); err != nil {
		t.Fatal(err)
	}
	sw.resumed(b)
}

// TestPostgresDiskFull: the database's tablespace (on a small tmpfs) fills
// up. The worker cannot store outcomes: it backs off, /readyz and
// simworker_backing_off say why (a ping does not notice a full disk),
// nothing is lost or turned into a rejection; once space returns it
// resumes by itself.
func TestPostgresDiskFull(t *testing.T) {
	skipShort(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (make test runs as root)")
	}
	ctx := context.Background()
	// Not t.TempDir: PostgreSQL's user must reach it, and its parents are
	// root's alone.
	dir, err := os.MkdirTemp("", "simworker-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=32m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH); _ = os.Remove(dir) })
	var st syscall.Stat_t
	if err := syscall.Stat(pgDir, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	space := fmt.Sprintf("e2e_small_%d", time.Now().UnixNano())
	db := space + "_db"
	if _, err := admin.Exec(ctx, "CREATE TABLESPACE "+space+" LOCATION '"+dir+"'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db+" TABLESPACE "+space); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		_, _ = c.Exec(ctx, "DROP TABLESPACE IF EXISTS "+space)
	})
	dbURL, pool := openDatabase(t, db)
	w := &world{t: t, name: "postgres_disk_full", dbURL: dbURL, pool: pool}
	repoLoad(t, w)
	node, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Shutdown)
	if w.nc, err = natsConnect(node.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nc.Close)
	w.js, _ = jetstream.New(w.nc)
	if _, err := client.Setup(ctx, w.js, client.StreamConfig{AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	tok := token(t, pool)
	// Fill the tmpfs, leaving nothing for the SIMs.
	fill := filepath.Join(dir, "filler")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	b := validCommands("pg", 300)
	w.publish(b)
	opsPort, _ := devstack.FreePort()
	sw := &storageWorld{world: w, ops: "127.0.0.1:" + itoa(opsPort)}
	w.workers = append(w.workers, startProc(t, "NATS_URL="+node.URL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=warn",
		"SIM_ACK_WAIT=2s", "SIM_MAX_BACKOFF=500ms", "SIM_RETRY_WINDOW=2s", "SIM_BATCH_SIZE=50", "SIM_HTTP_ADDR="+sw.ops))
	t.Logf("while full: %s", waitBackingOff(t, sw.ops, "No space left on device"))
	apiPort, _ := devstack.FreePort()
	startProcCmd(t, "api", "NATS_URL="+node.URL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=warn",
		"SIM_API_ADDR=127.0.0.1:"+itoa(apiPort), "SIM_HTTP_ADDR=off")
	api503(t, tok, apiPort)
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	sw.resumed(b)
	var sims int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sims`).Scan(&sims); err != nil || sims != len(b.msgs) {
		t.Fatalf("%d SIMs for %d commands (%v)", sims, len(b.msgs), err)
	}
}

func token(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	tok, _, err := app.New(repo.New(pool), "").CreateToken(context.Background(), "u-alice", "e2e", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// api503 waits until the API on port answers a valid POST /v1/sims with
// 503, the answer while a dependency cannot take the command.
func api503(t *testing.T, tok string, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+itoa(port)+"/v1/sims", strings.NewReader(`{"device_id":"d-1","iccid":"89660000000000099999"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				return
			}
			t.Fatalf("POST /v1/sims while storage is full: %s, want 503", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API never answered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// repoLoad loads the fault suite's reference data into w's database.
func repoLoad(t *testing.T, w *world) {
	t.Helper()
	repotest.Load(t, w.pool, faultFixtures())
}
