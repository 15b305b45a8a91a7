package repo

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/app"
)

// Storage is the application's storage (app.Storage) on a PostgreSQL pool,
// and the operator's: fixtures, outcomes to republish, counts. Each method
// is one unit of work: a statement, or a transaction begun, handed to
// lower-case helpers that take it as an executor, and committed.
type Storage struct {
	pool *pgxpool.Pool
}

var _ app.Storage = (*Storage)(nil)

// New returns the storage on pool (Open's, migrated).
func New(pool *pgxpool.Pool) *Storage { return &Storage{pool: pool} }

// executor is what every statement here runs on: the pool, a connection or
// a transaction.
type executor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
}

var (
	_ executor = (*pgxpool.Pool)(nil)
	_ executor = (*pgx.Conn)(nil)
	_ executor = pgx.Tx(nil)
)
