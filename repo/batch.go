package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/app"
	"simworker/domain"
)

// smallBatch: a batch with at most this many rows to write inserts them
// with one INSERT per table, sent with COMMIT in one round trip; a larger
// one streams them with COPY, which PostgreSQL takes for less.
const smallBatch = 64

// BeginBatch acquires a connection and sends, in one round trip, BEGIN, the
// stored outcomes of ids and the facts of asks (app.BatchStore). Any error
// leaves nothing open.
func (s *Storage) BeginBatch(ctx context.Context, ids []string, asks []*domain.Command) (app.BatchTx, []domain.Outcome, []domain.Facts, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, nil, translate(err)
	}
	tx := &batchTx{conn: conn}
	stored, facts, err := beginAndRead(ctx, conn.Conn(), ids, asks)
	if err != nil {
		tx.Rollback(ctx)
		return nil, nil, nil, translate(err)
	}
	return tx, stored, facts, nil
}

// beginAndRead opens the transaction and reads, in the same round trip, the
// outcomes stored for ids and the facts of asks.
func beginAndRead(ctx context.Context, conn *pgx.Conn, ids []string, asks []*domain.Command) ([]domain.Outcome, []domain.Facts, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(outcomesOfSQL, ids)
	if len(asks) > 0 {
		queueFacts(b, asks)
	}
	br := conn.SendBatch(ctx, b)
	_, err := br.Exec()
	var stored []domain.Outcome
	if err == nil {
		stored, err = readOutcomes(br)
	}
	var facts []domain.Facts
	if err == nil && len(asks) > 0 {
		facts, err = readFacts(br, len(asks))
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return stored, facts, err
}

// batchTx is a batch's transaction on a connection of its own.
type batchTx struct {
	conn *pgxpool.Conn // nil once released
}

// InsertSimsSkippingTaken inserts sims with ON CONFLICT on the ICCID and
// returns those stored: a concurrent insert of the same ICCID waits for the
// first transaction and then reports the conflict, without aborting this
// one.
func (t *batchTx) InsertSimsSkippingTaken(ctx context.Context, sims []domain.Sim) ([]domain.Sim, error) {
	kept, err := insertSimsSkippingTaken(ctx, t.conn, sims)
	return kept, translate(err)
}

// Commit inserts the SIMs and the outcomes and commits: for a small batch
// one INSERT each and COMMIT in one round trip, else COPY each, then COMMIT.
// A unique violation on the ICCID is app.ErrICCIDTaken; on a command id,
// app.ErrDecidedConcurrently (the check waited for the other transaction to
// commit).
func (t *batchTx) Commit(ctx context.Context, sims []domain.Sim, outs []domain.Outcome) error {
	var err error
	db := t.conn
	if len(sims)+len(outs) <= smallBatch {
		b := &pgx.Batch{}
		if len(sims) > 0 {
			queueInsertSims(b, sims)
		}
		if len(outs) > 0 {
			queueInsertOutcomes(b, outs)
		}
		b.Queue("COMMIT")
		err = db.SendBatch(ctx, b).Close()
	} else {
		if err = copySims(ctx, db, sims); err == nil {
			if err = copyOutcomes(ctx, db, outs); err == nil {
				_, err = db.Exec(ctx, "COMMIT")
			}
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "sims_iccid_key":
			return app.ErrICCIDTaken
		case "processed_commands_pkey":
			return app.ErrDecidedConcurrently
		}
	}
	return translate(err)
}

// Rollback rolls the transaction back if it is still open (closing the
// connection if even that fails, so the pool drops it) and releases the
// connection.
func (t *batchTx) Rollback(ctx context.Context) {
	if t.conn == nil {
		return
	}
	conn := t.conn
	t.conn = nil
	defer conn.Release()
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(rctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(rctx)
	}
}

// ReplaceOutcome replaces the stored outcome old by replacement and deletes
// the SIM old created, in one transaction (app.BatchStore).
func (s *Storage) ReplaceOutcome(ctx context.Context, old, replacement domain.Outcome) (domain.Outcome, error) {
	var stored []domain.Outcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		eventID, err := binaryUUID(replacement.EventID)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE processed_commands SET event_id = $3, event_type = $4, status = $5, code = $6, sim_id = NULL, event = $7
			WHERE command_id = $1 AND event_id = $2::uuid`,
			old.CommandID, old.EventID, eventID, replacement.Type, int32(replacement.Status), string(replacement.Code), replacement.Event)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			if old.SimID != "" {
				if _, err := tx.Exec(ctx, `DELETE FROM sims WHERE id = $1::uuid`, old.SimID); err != nil {
					return err
				}
			}
			stored = []domain.Outcome{replacement}
			return nil
		}
		stored, err = storedOutcomes(ctx, tx, []string{old.CommandID})
		return err
	})
	if err != nil {
		return domain.Outcome{}, translate(err)
	}
	if len(stored) != 1 {
		return domain.Outcome{}, fmt.Errorf("no stored outcome for command %q to replace", old.CommandID)
	}
	return stored[0], nil
}
