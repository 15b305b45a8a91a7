package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"simworker/domain"
)

// outcomeColumns are the columns of a processed_commands row as scanOutcome
// reads them.
const outcomeColumns = `command_id, event_id::text, event_type, status, coalesce(code, ''),
	coalesce(sim_id::text, ''), event, processed_at`

// outcomeRow is a stored outcome and when it was stored, which pages go by.
type outcomeRow struct {
	domain.Outcome
	processedAt time.Time
}

// scanOutcome reads a row of outcomeColumns: an outcome read back is
// Replayed.
func scanOutcome(row pgx.CollectableRow) (outcomeRow, error) {
	var o outcomeRow
	err := row.Scan(&o.CommandID, &o.EventID, &o.Type, &o.Status, &o.Code, &o.SimID, &o.Event, &o.processedAt)
	o.Replayed = true
	return o, err
}

// outcomesOfSQL selects the outcomes stored for the ids $1, oldest first.
const outcomesOfSQL = `SELECT ` + outcomeColumns + ` FROM processed_commands
	WHERE command_id = ANY($1) AND event IS NOT NULL ORDER BY processed_at, command_id`

// queryOutcomesOf selects the outcomes stored for ids, oldest first.
func queryOutcomesOf(ctx context.Context, db executor, ids []string) (pgx.Rows, error) {
	return db.Query(ctx, outcomesOfSQL, ids)
}

// queryOutcomesAfter selects up to limit stored outcomes that come after
// (at, commandID) in the order (processed_at, command_id).
func queryOutcomesAfter(ctx context.Context, db executor, at time.Time, commandID string, limit int) (pgx.Rows, error) {
	return db.Query(ctx, `SELECT `+outcomeColumns+` FROM processed_commands
		WHERE event IS NOT NULL AND (processed_at, command_id) > ($1, $2)
		ORDER BY processed_at, command_id LIMIT $3`, at, commandID, limit)
}

// storedOutcomes reads the outcomes earlier transactions stored for ids.
func storedOutcomes(ctx context.Context, db executor, ids []string) ([]domain.Outcome, error) {
	rows, err := queryOutcomesOf(ctx, db, ids)
	return collectOutcomes(rows, err)
}

// readOutcomes reads the answer to outcomesOfSQL on a pipeline.
func readOutcomes(br pgx.BatchResults) ([]domain.Outcome, error) { return collectOutcomes(br.Query()) }

func collectOutcomes(rows pgx.Rows, err error) ([]domain.Outcome, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Outcome, error) {
		o, err := scanOutcome(r)
		return o.Outcome, err
	})
}

// outcomeCopyColumns are the columns outcomes are written with.
var outcomeCopyColumns = []string{"command_id", "event_id", "event_type", "status", "code", "sim_id", "event"}

// copyOutcomes stores the outcomes with COPY: the events (about 1 KB each)
// stream to the server in bounded chunks instead of one array parameter that
// pgx grows by doubling. The batch's command ids are distinct and none was
// stored when the batch read stored outcomes, so a unique violation on the
// primary key means another transaction decided one of them meanwhile.
func copyOutcomes(ctx context.Context, db executor, outs []domain.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	row := make([]any, len(outcomeCopyColumns))
	_, err := db.CopyFrom(ctx, pgx.Identifier{"processed_commands"}, outcomeCopyColumns,
		pgx.CopyFromSlice(len(outs), func(k int) ([]any, error) {
			o := &outs[k]
			// UUIDs go as 16 bytes: given a string, pgx's binary COPY
			// encoding fails first (building an error) and then parses it.
			eventID, err := binaryUUID(o.EventID)
			if err != nil {
				return nil, fmt.Errorf("event id: %w", err)
			}
			row[0], row[1], row[2], row[3], row[4], row[5], row[6] = o.CommandID, eventID, o.Type, int32(o.Status), nil, nil, o.Event
			if o.Code != "" {
				row[4] = string(o.Code)
			}
			if o.SimID != "" {
				if row[5], err = binaryUUID(o.SimID); err != nil {
					return nil, fmt.Errorf("sim id: %w", err)
				}
			}
			return row, nil
		}))
	return err
}

// queueInsertOutcomes queues the insert of outs, as arrays, on a pipeline:
// for a small batch, sent with its COMMIT.
func queueInsertOutcomes(b *pgx.Batch, outs []domain.Outcome) {
	n := len(outs)
	ids, types, events := make([]string, n), make([]string, n), make([][]byte, n)
	eventIDs, simIDs := make([]pgtype.UUID, n), make([]pgtype.UUID, n)
	statuses, codes := make([]int32, n), make([]*string, n)
	for k := range outs {
		o := &outs[k]
		ids[k], types[k], events[k], statuses[k] = o.CommandID, o.Type, o.Event, int32(o.Status)
		eventIDs[k], _ = binaryUUID(o.EventID)
		if o.SimID != "" {
			simIDs[k], _ = binaryUUID(o.SimID)
		}
		if o.Code != "" {
			c := string(o.Code)
			codes[k] = &c
		}
	}
	b.Queue(`INSERT INTO processed_commands (command_id, event_id, event_type, status, code, sim_id, event)
		SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int4[], $5::text[], $6::uuid[], $7::bytea[])`,
		ids, eventIDs, types, statuses, codes, simIDs, events)
}

func binaryUUID(s string) (pgtype.UUID, error) {
	u, err := uuid.Parse(s)
	return pgtype.UUID{Bytes: u, Valid: err == nil}, err
}

// StoredOutcomes calls fn for each stored outcome, oldest first: those
// processed at or after since (when commandIDs is nil), or those of the given
// command ids. It reads in pages, so any number of outcomes is fine.
func (s *Storage) StoredOutcomes(ctx context.Context, since time.Time, commandIDs []string, fn func(domain.Outcome) error) error {
	const page = 1000
	lastAt, lastID := since, ""
	for start := 0; ; start += page {
		var rows pgx.Rows
		var err error
		if commandIDs != nil {
			end := min(start+page, len(commandIDs))
			if start >= end {
				return nil
			}
			rows, err = queryOutcomesOf(ctx, s.pool, commandIDs[start:end])
		} else {
			rows, err = queryOutcomesAfter(ctx, s.pool, lastAt, lastID, page)
		}
		if err != nil {
			return translate(err)
		}
		n := 0
		for rows.Next() {
			o, err := scanOutcome(rows)
			if err != nil {
				rows.Close()
				return translate(err)
			}
			lastAt, lastID = o.processedAt, o.CommandID
			n++
			if err := fn(o.Outcome); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return translate(err)
		}
		if commandIDs == nil && n < page {
			return nil
		}
	}
}

// OutcomeCount is how many stored outcomes have a type, code and status.
type OutcomeCount struct {
	Type     string
	Code     string
	Status   int
	Commands int64
}

// OutcomeCounts counts the stored outcomes by type and code, and the SIMs.
func (s *Storage) OutcomeCounts(ctx context.Context) ([]OutcomeCount, int64, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT event_type, coalesce(code, ''), status, count(*) FROM processed_commands
		WHERE event IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 3, 2`)
	if err != nil {
		return nil, 0, translate(err)
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutcomeCount, error) {
		var c OutcomeCount
		err := r.Scan(&c.Type, &c.Code, &c.Status, &c.Commands)
		return c, err
	})
	if err != nil {
		return nil, 0, translate(err)
	}
	var sims int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sims`).Scan(&sims); err != nil {
		return nil, 0, translate(err)
	}
	return counts, sims, nil
}
