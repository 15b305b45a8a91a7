package repo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/domain"
)

// decideOneAtATime is the reference app.App.Handle (on this storage) must match outcome for
// outcome: it decides envs in one transaction, one command after the other,
// each with simple statements of its own, the way the contract reads.
func decideOneAtATime(t *testing.T, pool *pgxpool.Pool, envs []domain.Envelope) []domain.Outcome {
	t.Helper()
	ctx := context.Background()
	var outs []domain.Outcome
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		outs = outs[:0]
		for _, env := range envs {
			o, err := decideOne(ctx, tx, env)
			if err != nil {
				return fmt.Errorf("command %q: %w", env.CommandID, err)
			}
			outs = append(outs, o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func decideOne(ctx context.Context, tx pgx.Tx, env domain.Envelope) (domain.Outcome, error) {
	if env.CommandID == "" {
		return domain.Outcome{}, errors.New("envelope without a command id")
	}
	// A stored outcome wins, including one stored earlier in this batch.
	o := domain.Outcome{CommandID: env.CommandID, Replayed: true}
	err := tx.QueryRow(ctx, `
		SELECT event_id::text, event_type, status, coalesce(code, ''), coalesce(sim_id::text, ''), event
		FROM processed_commands WHERE command_id = $1`, env.CommandID).
		Scan(&o.EventID, &o.Type, &o.Status, &o.Code, &o.SimID, &o.Event)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return o, err
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	reject := func(e *domain.Error) (domain.Outcome, error) {
		o := domain.NewRejected(domain.DefaultSource, uuid.NewString(), env.CommandID, now, e)
		return o, storeOne(ctx, tx, o)
	}
	if env.Reject != nil {
		return reject(env.Reject)
	}
	cmd := env.Command
	var (
		companyID          *string
		allowed, mnoUsable bool
	)
	if err := tx.QueryRow(ctx, `
		WITH RECURSIVE chain(id) AS (
			SELECT company_id FROM devices WHERE id = $1
			UNION
			SELECT c.parent_id FROM companies c JOIN chain ON c.id = chain.id WHERE c.parent_id IS NOT NULL
		)
		SELECT
			(SELECT company_id FROM devices WHERE id = $1),
			EXISTS (SELECT 1 FROM grants WHERE user_id = $2 AND permission = 'sims:create' AND company_id IN (SELECT id FROM chain)),
			$3::text IS NULL OR EXISTS (SELECT 1 FROM mno_integrations WHERE id = $3 AND company_id IN (SELECT id FROM chain))`,
		cmd.Sim.DeviceID, cmd.ActorID, cmd.Sim.MNOIntegrationID).Scan(&companyID, &allowed, &mnoUsable); err != nil {
		return domain.Outcome{}, err
	}
	switch {
	case companyID == nil:
		return reject(domain.ErrDeviceNotFound)
	case !allowed:
		return reject(domain.ErrUnauthorized(*companyID))
	case !mnoUsable:
		return reject(domain.ErrMNONotFound)
	}

	in := cmd.Sim
	sim := domain.Sim{ID: uuid.NewString(), CompanyID: *companyID, DeviceID: in.DeviceID, MNOIntegrationID: in.MNOIntegrationID,
		ICCID: in.ICCID, MSISDN: in.MSISDN, Status: in.Status, CommunicationPlan: in.CommunicationPlan, RatePlan: in.RatePlan,
		CreatedAt: now, CreatedBy: cmd.ActorID, UpdatedAt: now, UpdatedBy: cmd.ActorID}
	// The metadata comes back as PostgreSQL prints jsonb, as in the store's
	// events.
	err = tx.QueryRow(ctx, `
		INSERT INTO sims (id, company_id, device_id, mno_integration_id, iccid, msisdn, status,
		                  communication_plan, rate_plan, sim_metadata, created_at, created_by, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, $12)
		ON CONFLICT (iccid) DO NOTHING
		RETURNING sim_metadata::text`,
		sim.ID, sim.CompanyID, sim.DeviceID, sim.MNOIntegrationID, sim.ICCID, sim.MSISDN, sim.Status,
		sim.CommunicationPlan, sim.RatePlan, string(in.SimMetadata), now, cmd.ActorID).Scan(&sim.SimMetadata)
	if errors.Is(err, pgx.ErrNoRows) {
		return reject(domain.ErrICCIDTaken)
	}
	if err != nil {
		return domain.Outcome{}, err
	}
	o, err = domain.NewCreated(domain.DefaultSource, uuid.NewString(), env.CommandID, sim)
	if err != nil {
		return domain.Outcome{}, err
	}
	return o, storeOne(ctx, tx, o)
}

func storeOne(ctx context.Context, tx pgx.Tx, o domain.Outcome) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO processed_commands (command_id, event_id, event_type, status, code, sim_id, event)
		VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, '')::uuid, $7)`,
		o.CommandID, o.EventID, o.Type, o.Status, string(o.Code), o.SimID, o.Event)
	return err
}
