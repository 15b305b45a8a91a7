// Package repo is PostgreSQL, through pgx/v5: the storage the application
// needs (app.Storage, implemented by Storage), the operator's reads and
// fixtures, and the migrations. Each Storage method is one unit of work whose
// SQL sits in lower-case functions that take an executor (pool, connection
// or transaction); the company tree's rule is SQL once, in the
// company_lineage table and the grant_coverage view (migration 007). Driver
// errors are translated here, once.
package repo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"simworker/domain"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects a pool to url (a libpq URL or key=value string; TLS settings
// such as sslmode=verify-full and sslrootcert go in it). It connects lazily:
// a server that is down is met by the first call, as an outage.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) { return OpenPool(ctx, url, 0) }

// OpenPool is Open with at least conns connections in the pool, unless the
// URL sets pool_max_conns. pgxpool's default (4 on this kind of machine)
// fits the worker's few large transactions; the API commits one small row
// per request and needs many connections to share each WAL flush.
func OpenPool(ctx context.Context, url string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse error can echo the URL, password included: say less.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	if conns > 0 && !strings.Contains(url, "pool_max_conns") && cfg.MaxConns < int32(conns) {
		cfg.MaxConns = int32(conns)
	}
	// Plans fixed once per connection. The worker's statements are prepared
	// once per connection and run with arrays of any length; by default
	// PostgreSQL re-plans them at every execution while it compares plans,
	// and planning the access check cost more than running it: a batch of
	// two took four times as long as with a generic plan, and batches of 500
	// were no faster. A generic plan is made once, from the statistics of
	// that moment: made while processed_commands was still empty it scanned
	// the whole table for every batch (a tenfold slowdown until autovacuum
	// analysed it, a minute later). Every statement of the worker has an
	// index to use, so sequential scans are ruled out instead of left to
	// statistics. A query that must scan anyway (simctl status counting
	// outcomes) then carries the disabling cost, which would make it look
	// expensive enough to JIT-compile: short statements gain nothing from
	// JIT, so it is off. A setting in the connection string (options=-c...)
	// wins.
	params := cfg.ConnConfig.RuntimeParams
	var settings []string
	for _, s := range []struct{ name, value string }{{"plan_cache_mode", "force_generic_plan"}, {"enable_seqscan", "off"}, {"jit", "off"}} {
		if _, set := params[s.name]; !set && !strings.Contains(params["options"], s.name) {
			settings = append(settings, "SET "+s.name+" = "+s.value)
		}
	}
	if len(settings) > 0 {
		sql := strings.Join(settings, "; ")
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, sql)
			return err
		}
	}
	deadlines(cfg.ConnConfig, url)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", translate(err))
	}
	return pool, nil
}

// Migrate applies the embedded migrations that are missing. It holds a
// PostgreSQL advisory lock while it runs and each migration runs in its own
// transaction, so several workers starting at once are safe: one migrates,
// the others wait and then find nothing to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "simworker_schema_version")
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	return nil
}

// translate turns a driver error into the domain's vocabulary: failures that
// retrying (or an operator) can cure (connection lost or refused, server
// shutting down or overloaded, serialization failures and deadlocks, schema
// or privilege mismatches) wrap domain.ErrUnavailable; anything else
// (data-driven failures such as a data exception or a raised error) is
// returned as it is and counts as an unexpected failure of that command.
func translate(err error) error {
	if err == nil || errors.Is(err, domain.ErrUnavailable) {
		return err
	}
	if transient(err) {
		return fmt.Errorf("%w: postgresql: %v", domain.ErrUnavailable, err)
	}
	return err
}

func transient(err error) bool {
	// Failing to connect is an outage whatever the server said (too many
	// connections, database not accepting connections, authentication):
	// checked before the SQLSTATE, which a refused connection carries too.
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Code == "57014" { // query_canceled (statement_timeout): the command's own doing
			return false
		}
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57", // operator intervention: admin/crash shutdown, cannot connect now
			"58", // system error (I/O)
			// The schema, privileges or server do not match what the worker
			// needs (a migration not applied, a revoked grant, a cached plan
			// gone stale, a wrong database or password): an operator's
			// problem, never a command's, so never a stored 500.
			"42", "0A", "3D", "28", "XX":
			return true
		}
		switch pgErr.Code {
		case "40001", "40P01", // serialization failure, deadlock
			"55P03", // lock not available
			"25006": // read-only transaction: a failover in progress
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded)
}
