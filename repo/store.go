package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	careful := false
	for attempt := 1; ; attempt++ {
		outs, err := s.handleOnce(ctx, envs, careful)
		switch {
		case errors.Is(err, errTaken) && !careful:
			careful = true // decided again, the SIMs inserted around the taken ICCID
			continue
		case errors.Is(err, errRaced) && attempt < 5:
			continue // the retry reads the other worker's outcomes
		case err != nil:
			return nil, translate(err)
		}
		return outs, nil
	}
}

// handleOnce decides the batch in a transaction on a connection of its own,
// rolled back (or the connection closed) on any error.
func (s *Store) handleOnce(ctx context.Context, envs []domain.Envelope, careful bool) (outs []domain.Outcome, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	defer func() {
		if err == nil || conn.Conn().PgConn().TxStatus() == 'I' {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
			_ = conn.Conn().Close(rctx) // the pool drops it
		}
	}()
	return s.decideBatch(ctx, conn.Conn(), envs, careful)
}

// smallBatch: a batch with at most this many rows to write inserts them
// with one INSERT per table, sent with COMMIT in one round trip; a larger
// one streams them with COPY, which PostgreSQL takes for less.
const smallBatch = 64

// decideBatch decides a batch in three round trips whatever its size (COPY
// takes two more each, for a large batch): BEGIN, the stored outcomes of the
// batch's command ids and the facts of checks 4 to 6 of its new commands;
// then the SIMs and the outcomes, and COMMIT. domain.Batch makes every
// decision in between, as if one command after the other in the order
// given; this only fetches facts and writes rows.
//
// The SIMs are made here, so nothing is read back (their metadata is
// already the text jsonb prints, domain.SimInput), and inserted
// optimistically, with every outcome built beforehand: an ICCID taken
// (stored before, or by a transaction still running, which the unique index
// waits for) fails the insert, and the batch is decided again, careful:
// its SIMs inserted with ON CONFLICT DO NOTHING, the taken ones left out
// (ErrICCIDTaken). A plain insert costs PostgreSQL about half as much (8 µs
// a SIM with COPY against 15), and taken ICCIDs are rare.
func (s *Store) decideBatch(ctx context.Context, conn *pgx.Conn, envs []domain.Envelope, careful bool) ([]domain.Outcome, error) {
	b, err := domain.NewBatch(envs)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	// A command decided concurrently by another transaction and not yet
	// committed is not seen here: the outcomes' primary key catches it.
	stored, facts, err := beginAndRead(ctx, conn, b.CommandIDs(), b.Asks())
	if err != nil {
		return nil, err
	}
	b.Plan(stored)
	sims := makeSims(b.Decide(facts), now)
	if careful {
		if sims, err = insertSimsRacing(ctx, conn, sims); err != nil {
			return nil, err
		}
	}
	fresh, err := s.outcomes(b.Settle(sims), envs, now)
	if err != nil {
		return nil, err
	}
	if careful {
		sims = nil // in already
	}
	if err := writeAndCommit(ctx, conn, sims, fresh); err != nil {
		return nil, err
	}
	return b.Outcomes(fresh), nil
}

// outcomes builds the outcome of each decision, its event carrying the
// command's traceparent.
func (s *Store) outcomes(decided []domain.Decision, envs []domain.Envelope, now time.Time) ([]domain.Outcome, error) {
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
		} else {
			var err error
			if fresh[k], err = domain.NewCreated(s.source, newID(), d.CommandID, *d.Sim); err != nil {
				return nil, err
			}
		}
		fresh[k] = fresh[k].WithTraceParent(traces[d.CommandID])
	}
	return fresh, nil
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

// writeAndCommit inserts the SIMs and the outcomes and commits: for a small
// batch one INSERT each and COMMIT in one round trip, else COPY each, then
// COMMIT. A unique violation on the ICCID is errTaken; on a command id,
// errRaced (another transaction decided it meanwhile: the check waited for
// it to commit).
func writeAndCommit(ctx context.Context, conn *pgx.Conn, sims []domain.Sim, outs []domain.Outcome) error {
	var err error
	if len(sims)+len(outs) <= smallBatch {
		b := &pgx.Batch{}
		if len(sims) > 0 {
			queueInsertSims(b, sims)
		}
		if len(outs) > 0 {
			queueInsertOutcomes(b, outs)
		}
		b.Queue("COMMIT")
		err = conn.SendBatch(ctx, b).Close()
	} else {
		if err = copySims(ctx, conn, sims); err == nil {
			if err = copyOutcomes(ctx, conn, outs); err == nil {
				_, err = conn.Exec(ctx, "COMMIT")
			}
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "sims_iccid_key":
			return errTaken
		case "processed_commands_pkey":
			return errRaced
		}
	}
	return err
}

// errTaken: the optimistic insert met a taken ICCID; the batch is decided
// again, careful.
var errTaken = errors.New("an ICCID of the batch is taken")

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
