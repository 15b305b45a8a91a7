// Package e2e holds the whole-system suites: real `simworker run` processes
// against a private PostgreSQL cluster and in-process JetStream servers (one
// node or a three-node cluster), with faults injected while they work.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/internal/devstack"
	"simworker/repo"
)

// The tests here share one PostgreSQL cluster that the fault suite crashes
// and restarts: none of them may call t.Parallel.
var (
	pg      *devstack.Postgres // the suite's own cluster: scenarios crash and restart it
	pgDir   string             // its data directory
	binPath string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() { // every test here runs real processes for a minute or more
		os.Exit(m.Run())
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "simworker-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "simworker")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/simworker").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build simworker: %v\n%s", err, out)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// fsync stays on: the crash scenario is a real crash.
		pgDir = filepath.Join(dir, "pg")
		pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: pgDir})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
			return 1
		}
		defer func() { _ = pg.Stop() }() // the server running at the end: a scenario may have restarted it
		return m.Run()
	}())
}

// newDatabase creates a migrated database of the test's own on the suite's
// cluster.
func newDatabase(t *testing.T, name string) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := fmt.Sprintf("e2e_%s_%s", name, hex.EncodeToString(b))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return openDatabase(t, db)
}

// openDatabase opens database db of the suite's cluster, migrated; the
// pool closes in cleanup.
func openDatabase(t *testing.T, db string) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	u, _ := url.Parse(pg.URL)
	u.Path = "/" + db
	pool, err := repo.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := repo.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return u.String(), pool
}

// proc is one `simworker run` process; restart replaces it with a new one.
type proc struct {
	t    *testing.T
	sub  string // the simworker command: run, api
	env  []string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
}

func startProc(t *testing.T, env ...string) *proc {
	t.Helper()
	return startProcCmd(t, "run", env...)
}

// startProcCmd starts `simworker SUB` with env.
func startProcCmd(t *testing.T, sub string, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, sub: sub, env: env, log: filepath.Join(t.TempDir(), sub+".log")}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) start() { p.startBinary(binPath) }

// startBinary starts the process from another build of simworker.
func (p *proc) startBinary(bin string) {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(bin, p.sub)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); f.Close() }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to go.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	done <- nil // later waits return at once
}

// stop sends SIGTERM and returns the exit error.
func (p *proc) stop(timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no exit %s after SIGTERM", timeout)
	}
}

// exited reports whether the process ended by itself.
func (p *proc) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case err := <-done:
		done <- err
		return true
	default:
		return false
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = append([]byte("..."), b[len(b)-4000:]...)
	}
	return string(bytes.TrimSpace(b))
}

// skipShort skips a whole-system test under -short (make test-short); make
// test runs it.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real worker processes for a minute or more: make test runs it")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
