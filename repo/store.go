package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/domain"
)

// Store decides Create-SIM commands against PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	source string
	now    func() time.Time
}

// NewStore returns a Store whose events carry source as their CloudEvents
// source (domain.DefaultSource when empty).
func NewStore(pool *pgxpool.Pool, source string) *Store {
	if source == "" {
		source = domain.DefaultSource
	}
	return &Store{pool: pool, source: source, now: time.Now}
}

// Handle decides a batch of commands in one transaction, in the order given
// (stream order: an ICCID clash inside the batch goes to the earlier command),
// and stores each outcome with its command id. Every envelope must carry a
// command id. A command whose outcome is already stored gets that outcome back
// unchanged (Replayed set) and creates nothing; an envelope with Reject set
// (checks 1 to 3 failed, or domain.InternalEnvelope) is stored as that
// rejection otherwise. The outcomes are in the order of envs.
//
// On error nothing is stored. An error wrapping domain.ErrUnavailable is an
// outage to retry; any other error is unexpected (a bug or bad data the
// checks did not foresee).
func (s *Store) Handle(ctx context.Context, envs []domain.Envelope) ([]domain.Outcome, error) {
	for attempt := 1; ; attempt++ {
		var outs []domain.Outcome
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			outs, err = s.decideBatch(ctx, tx, envs)
			return err
		})
		if errors.Is(err, errRaced) && attempt < 5 {
			continue // the retry reads the other worker's outcomes
		}
		if err != nil {
			return nil, translate(err)
		}
		return outs, nil
	}
}

// decideBatch decides a batch with four statements whatever its size (fewer
// when nothing needs them): read the stored outcomes of the batch's command
// ids, run checks 4 to 6 for all new commands in one query, insert every SIM
// in one statement, store every new outcome in one statement. domain.Batch
// makes every decision in between, as if one command after the other in
// the order given; this only fetches facts and writes rows.
func (s *Store) decideBatch(ctx context.Context, tx pgx.Tx, envs []domain.Envelope) ([]domain.Outcome, error) {
	b, err := domain.NewBatch(envs)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	// One round trip: the stored outcomes, the facts, the savepoint the SIMs'
	// copy may roll back to. A command decided concurrently by another
	// transaction and not yet committed is not seen here: insertOutcomes
	// catches it.
	stored, facts, err := readBatch(ctx, tx, b.CommandIDs(), b.Asks())
	if err != nil {
		return nil, err
	}
	b.Plan(stored)
	inserted, err := insertSims(ctx, tx, b.Decide(facts), now)
	if err != nil {
		return nil, err
	}
	decided := b.Settle(inserted)
	var traces map[string]string // command id: traceparent, for the events
	for _, e := range envs {
		if e.TraceParent != "" {
			if traces == nil {
				traces = map[string]string{}
			}
			traces[e.CommandID] = e.TraceParent
		}
	}
	fresh := make([]domain.Outcome, len(decided))
	for k, d := range decided {
		if d.Reject != nil {
			fresh[k] = domain.NewRejected(s.source, newID(), d.CommandID, now, d.Reject)
		} else if fresh[k], err = domain.NewCreated(s.source, newID(), d.CommandID, *d.Sim); err != nil {
			return nil, err
		}
		fresh[k] = fresh[k].WithTraceParent(traces[d.CommandID])
	}
	if err := insertOutcomes(ctx, tx, fresh); err != nil {
		return nil, err
	}
	return b.Outcomes(fresh), nil
}

// readBatch reads, in one round trip, the outcomes stored for ids and the
// facts of asks, and sets simsSavepoint.
func readBatch(ctx context.Context, tx pgx.Tx, ids []string, asks []*domain.Command) ([]domain.Outcome, []domain.Facts, error) {
	b := &pgx.Batch{}
	b.Queue(outcomesOfSQL, ids)
	if len(asks) > 0 {
		queueFacts(b, asks)
	}
	b.Queue(simsSavepoint)
	br := tx.SendBatch(ctx, b)
	stored, err := readOutcomes(br)
	var facts []domain.Facts
	if err == nil && len(asks) > 0 {
		facts, err = readFacts(br, len(asks))
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return stored, facts, err
}

// errRaced: another transaction stored an outcome for one of the batch's
// commands while this one decided it. The batch is rolled back and decided
// again, and then finds that outcome stored.
var errRaced = errors.New("another worker decided a command of the batch concurrently")

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// ReplaceWithInternal replaces the stored outcome o, whose event could not
// be published for a reason of its own (larger than the NATS server's
// maximum payload, say), by a 500 internal rejection, in one transaction:
// the SIM o created goes too, since it was never announced and must not
// hold its ICCID. It returns the outcome stored now: that rejection, or, when
// o is no longer the stored outcome (another worker replaced it first),
// the one that is.
func (s *Store) ReplaceWithInternal(ctx context.Context, o domain.Outcome, traceParent string) (domain.Outcome, error) {
	internal := domain.NewInternal(s.source, newID(), o.CommandID, s.now().UTC().Truncate(time.Microsecond)).WithTraceParent(traceParent)
	var stored []domain.Outcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		eventID, err := binaryUUID(internal.EventID)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE processed_commands SET event_id = $3, event_type = $4, status = $5, code = $6, sim_id = NULL, event = $7
			WHERE command_id = $1 AND event_id = $2::uuid`,
			o.CommandID, o.EventID, eventID, internal.Type, int32(internal.Status), string(internal.Code), internal.Event)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			if o.SimID != "" {
				if _, err := tx.Exec(ctx, `DELETE FROM sims WHERE id = $1::uuid`, o.SimID); err != nil {
					return err
				}
			}
			stored = []domain.Outcome{internal}
			return nil
		}
		stored, err = storedOutcomes(ctx, tx, []string{o.CommandID})
		return err
	})
	if err != nil {
		return domain.Outcome{}, translate(err)
	}
	if len(stored) != 1 {
		return domain.Outcome{}, fmt.Errorf("no stored outcome for command %q to replace", o.CommandID)
	}
	return stored[0], nil
}
