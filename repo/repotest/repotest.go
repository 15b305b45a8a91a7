// Package repotest gives each test its own migrated PostgreSQL database, on
// the server named by DATABASE_URL or, when it is unset, on a private cluster
// started once per test binary.
package repotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/deploy"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/repo"
)

var (
	once    sync.Once
	server  *devstack.Postgres
	baseURL string
	baseErr error
)

// Main runs the package's tests and stops the private cluster afterwards.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if server != nil {
		_ = server.Stop()
	}
	os.Exit(code)
}

// ServerURL is the URL of the server tests create their databases on.
func ServerURL(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if u := os.Getenv("DATABASE_URL"); u != "" {
			baseURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		server, baseErr = devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true})
		if baseErr == nil {
			baseURL = server.URL
		}
	})
	if baseErr != nil {
		t.Fatalf("start a private PostgreSQL for tests: %v", baseErr)
	}
	return baseURL
}

// NewDatabase creates an empty database of the test's own, dropped in
// cleanup, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := ServerURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "simworker_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewDB creates a migrated database of the test's own and returns a pool on
// it (closed in cleanup) and its URL.
func NewDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dbURL := NewDatabase(t)
	ctx := context.Background()
	pool, err := repo.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := repo.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return pool, dbURL
}

// LoadDemo loads the demo reference data (deploy/fixtures/demo.json), as
// simworker dev does.
func LoadDemo(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	f, err := domain.ParseFixtures(deploy.DemoFixtures)
	if err != nil {
		t.Fatalf("parse the demo fixtures: %v", err)
	}
	Load(t, pool, f)
}

// RefuseConnections makes the server at serverURL (its maintenance
// database) refuse connections to the database of dbURL and ends the ones
// open, as an outage of that database would; the returned function lets
// connections in again.
func RefuseConnections(t testing.TB, serverURL, dbURL string) (restore func()) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	exec := func(sql string, args ...any) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`ALTER DATABASE ` + db + ` WITH ALLOW_CONNECTIONS false`)
	exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, strings.TrimPrefix(u.Path, "/"))
	return func() { exec(`ALTER DATABASE ` + db + ` WITH ALLOW_CONNECTIONS true`) }
}

// Crash stops the server with an immediate shutdown (SIGQUIT): no
// checkpoint, crash recovery on the next start.
func Crash(t testing.TB, pg *devstack.Postgres) {
	t.Helper()
	if err := syscall.Kill(pg.PID(), syscall.SIGQUIT); err != nil {
		t.Fatalf("crash PostgreSQL: %v", err)
	}
	<-pg.Exited()
}

// Restart starts a stopped or crashed server again on its port and data,
// and returns the new server.
func Restart(ctx context.Context, pg *devstack.Postgres, opts devstack.PostgresOptions) (*devstack.Postgres, error) {
	opts.DataDir, opts.Port = pg.DataDir, pg.Port
	return devstack.StartPostgres(ctx, opts)
}

// Load loads reference data built in code (see domain.Fixtures' builder and
// testfactory.World).
func Load(t testing.TB, pool *pgxpool.Pool, f *domain.Fixtures) {
	t.Helper()
	if _, err := repo.New(pool).LoadFixtures(context.Background(), f); err != nil {
		t.Fatalf("load fixtures: %v", err)
	}
}
