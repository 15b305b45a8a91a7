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
// unchanged (Replayed set) and creates nothing.
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

// HandleSequential decides the batch like Handle, one command after the
// other with a few statements each: the reference that Handle's set-based
// statements must match, outcome for outcome.
func (s *Store) HandleSequential(ctx context.Context, envs []domain.Envelope) ([]domain.Outcome, error) {
	outs := make([]domain.Outcome, 0, len(envs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		outs = outs[:0]
		for _, env := range envs {
			o, err := s.decide(ctx, tx, env)
			if err != nil {
				return fmt.Errorf("command %q: %w", env.CommandID, err)
			}
			outs = append(outs, o)
		}
		return nil
	})
	if err != nil {
		return nil, translate(err)
	}
	return outs, nil
}

// StoreInternal stores (or, when one is already stored, returns) the outcome of
// a command that failed unexpectedly past its retry budget: a 500 internal
// rejection, so that it never blocks the commands behind it and every later
// delivery yields the same outcome.
func (s *Store) StoreInternal(ctx context.Context, commandID string, cause string) (domain.Outcome, error) {
	var out domain.Outcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		claimed, err := claim(ctx, tx, commandID)
		if err != nil {
			return err
		}
		if !claimed {
			out, err = storedOutcome(ctx, tx, commandID)
			return err
		}
		out = domain.NewRejected(s.source, newID(), commandID, s.now(),
			&domain.Error{Code: domain.CodeInternal, Message: "internal error: " + cause})
		return record(ctx, tx, out)
	})
	return out, translate(err)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// decide runs one command through the idempotency look-up and checks 4 to 7
// inside tx, and records its outcome.
func (s *Store) decide(ctx context.Context, tx pgx.Tx, env domain.Envelope) (domain.Outcome, error) {
	if env.CommandID == "" {
		return domain.Outcome{}, errors.New("envelope without a command id reached the store")
	}
	claimed, err := claim(ctx, tx, env.CommandID)
	if err != nil {
		return domain.Outcome{}, err
	}
	if !claimed {
		return storedOutcome(ctx, tx, env.CommandID)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	reject := func(e *domain.Error) (domain.Outcome, error) {
		out := domain.NewRejected(s.source, newID(), env.CommandID, now, e)
		return out, record(ctx, tx, out)
	}
	if env.Reject != nil {
		return reject(env.Reject)
	}

	cmd := env.Command
	companyID, allowed, mnoUsable, err := checkAccess(ctx, tx, cmd)
	switch {
	case err != nil:
		return domain.Outcome{}, err
	case companyID == nil:
		return reject(errDeviceNotFound)
	case !allowed:
		return reject(errUnauthorized(*companyID))
	case !mnoUsable:
		return reject(errMNONotFound)
	}

	sim, inserted, err := insertSim(ctx, tx, newID(), *companyID, cmd, now)
	if err != nil {
		return domain.Outcome{}, err
	}
	if !inserted {
		return reject(errICCIDTaken)
	}
	out, err := domain.NewCreated(s.source, newID(), env.CommandID, sim)
	if err != nil {
		return domain.Outcome{}, err
	}
	return out, record(ctx, tx, out)
}

// claim inserts the command's processed_commands row, or reports that it
// exists. When another transaction holds an uncommitted claim for the same
// command id, the insert waits for it to end: two workers never decide one
// command twice.
func claim(ctx context.Context, tx pgx.Tx, commandID string) (bool, error) {
	tag, err := tx.Exec(ctx,
		`INSERT INTO processed_commands (command_id) VALUES ($1) ON CONFLICT (command_id) DO NOTHING`, commandID)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// storedOutcome reads the outcome a previous transaction stored.
func storedOutcome(ctx context.Context, tx pgx.Tx, commandID string) (domain.Outcome, error) {
	var (
		o     domain.Outcome
		code  *string
		simID *string
	)
	err := tx.QueryRow(ctx, `
		SELECT event_id::text, event_type, status, code, sim_id::text, event
		FROM processed_commands WHERE command_id = $1`, commandID).
		Scan(&o.EventID, &o.Type, &o.Status, &code, &simID, &o.Event)
	if err != nil {
		return o, fmt.Errorf("read stored outcome: %w", err)
	}
	o.CommandID, o.Replayed = commandID, true
	if code != nil {
		o.Code = domain.Code(*code)
	}
	if simID != nil {
		o.SimID = *simID
	}
	return o, nil
}

// record completes the claimed row with the outcome.
func record(ctx context.Context, tx pgx.Tx, o domain.Outcome) error {
	var code, simID *string
	if o.Code != "" {
		c := string(o.Code)
		code = &c
	}
	if o.SimID != "" {
		simID = &o.SimID
	}
	_, err := tx.Exec(ctx, `
		UPDATE processed_commands
		SET event_id = $2, event_type = $3, status = $4, code = $5, sim_id = $6, event = $7, processed_at = now()
		WHERE command_id = $1`,
		o.CommandID, o.EventID, o.Type, o.Status, code, simID, o.Event)
	return err
}

// checkAccess runs checks 4 to 6 in one round trip: the device's company (nil
// when the device does not exist), whether the actor holds sims:create on that
// company or an ancestor, and whether the MNO integration, if any, belongs to
// that company or an ancestor. UNION (not UNION ALL) ends the walk up the
// tree even if the data holds a cycle.
func checkAccess(ctx context.Context, tx pgx.Tx, cmd domain.Command) (*string, bool, bool, error) {
	var (
		companyID          *string
		allowed, mnoUsable bool
	)
	err := tx.QueryRow(ctx, `
		WITH RECURSIVE device AS (
			SELECT company_id FROM devices WHERE id = $1
		), chain(id) AS (
			SELECT company_id FROM device
			UNION
			SELECT c.parent_id FROM companies c JOIN chain ON c.id = chain.id WHERE c.parent_id IS NOT NULL
		)
		SELECT
			(SELECT company_id FROM device),
			EXISTS (SELECT 1 FROM grants g
			        WHERE g.user_id = $2 AND g.permission = $3 AND g.company_id IN (SELECT id FROM chain)),
			$4::text IS NULL OR EXISTS (SELECT 1 FROM mno_integrations m
			        WHERE m.id = $4 AND m.company_id IN (SELECT id FROM chain))`,
		cmd.Sim.DeviceID, cmd.ActorID, domain.PermissionCreateSIM, cmd.Sim.MNOIntegrationID,
	).Scan(&companyID, &allowed, &mnoUsable)
	return companyID, allowed, mnoUsable, err
}

// insertSim stores the SIM unless its ICCID is taken. ON CONFLICT on the
// unique constraint settles races between workers: a concurrent insert of the
// same ICCID waits for the first transaction and then reports the conflict,
// without aborting this transaction.
func insertSim(ctx context.Context, tx pgx.Tx, id, companyID string, cmd domain.Command, now time.Time) (domain.Sim, bool, error) {
	in := cmd.Sim
	rows, err := tx.Query(ctx, `
		INSERT INTO sims (id, company_id, device_id, mno_integration_id, iccid, msisdn, status,
		                  communication_plan, rate_plan, sim_metadata, created_at, created_by, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, $12)
		ON CONFLICT ON CONSTRAINT sims_iccid_key DO NOTHING
		RETURNING `+simColumns,
		id, companyID, in.DeviceID, in.MNOIntegrationID, in.ICCID, in.MSISDN, in.Status,
		in.CommunicationPlan, in.RatePlan, string(in.SimMetadata), now, cmd.ActorID)
	if err != nil {
		return domain.Sim{}, false, err
	}
	sims, err := pgx.CollectRows(rows, scanSim)
	if err != nil || len(sims) == 0 {
		return domain.Sim{}, false, err
	}
	return sims[0], true, nil
}

const simColumns = `id::text, company_id, device_id, mno_integration_id, iccid, msisdn, status,
	communication_plan, rate_plan, sim_metadata::text, ctd_data_usage, ctd_sms_usage, included_usage,
	overage_limit_reached, sim_barred, last_sync_at, created_at, created_by, updated_at, updated_by`

func scanSim(row pgx.CollectableRow) (domain.Sim, error) {
	var (
		s  domain.Sim
		md string
	)
	err := row.Scan(&s.ID, &s.CompanyID, &s.DeviceID, &s.MNOIntegrationID, &s.ICCID, &s.MSISDN, &s.Status,
		&s.CommunicationPlan, &s.RatePlan, &md, &s.CtdDataUsage, &s.CtdSMSUsage, &s.IncludedUsage,
		&s.OverageLimitReached, &s.SimBarred, &s.LastSyncAt, &s.CreatedAt, &s.CreatedBy, &s.UpdatedAt, &s.UpdatedBy)
	s.SimMetadata = []byte(md)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, err
}

// StoredOutcomes calls fn for each stored outcome, oldest first: those
// processed at or after since (when commandIDs is nil), or those of the given
// command ids. It reads in pages, so any number of outcomes is fine.
func StoredOutcomes(ctx context.Context, pool *pgxpool.Pool, since time.Time, commandIDs []string, fn func(domain.Outcome) error) error {
	const page = 1000
	var (
		lastAt time.Time
		lastID string
	)
	for start := 0; ; start += page {
		var rows pgx.Rows
		var err error
		if commandIDs != nil {
			end := min(start+page, len(commandIDs))
			if start >= end {
				return nil
			}
			rows, err = pool.Query(ctx, `
				SELECT command_id, event_id::text, event_type, status, coalesce(code, ''), coalesce(sim_id::text, ''), event, processed_at
				FROM processed_commands WHERE command_id = ANY($1) AND event IS NOT NULL
				ORDER BY processed_at, command_id`, commandIDs[start:end])
		} else {
			if start == 0 {
				lastAt = since
			}
			rows, err = pool.Query(ctx, `
				SELECT command_id, event_id::text, event_type, status, coalesce(code, ''), coalesce(sim_id::text, ''), event, processed_at
				FROM processed_commands WHERE event IS NOT NULL AND (processed_at, command_id) > ($1, $2)
				ORDER BY processed_at, command_id LIMIT $3`, lastAt, lastID, page)
		}
		if err != nil {
			return translate(err)
		}
		n := 0
		for rows.Next() {
			var o domain.Outcome
			var code string
			if err := rows.Scan(&o.CommandID, &o.EventID, &o.Type, &o.Status, &code, &o.SimID, &o.Event, &lastAt); err != nil {
				rows.Close()
				return translate(err)
			}
			o.Code, o.Replayed, lastID = domain.Code(code), true, o.CommandID
			n++
			if err := fn(o); err != nil {
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
func OutcomeCounts(ctx context.Context, pool *pgxpool.Pool) ([]OutcomeCount, int64, error) {
	rows, err := pool.Query(ctx, `
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
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sims`).Scan(&sims); err != nil {
		return nil, 0, translate(err)
	}
	return counts, sims, nil
}
