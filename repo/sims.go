package repo

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"simworker/domain"
)

// factsSQL fetches the facts of checks 4 to 6 for a batch's commands in one
// query, in their order: the device's company, whether the actor holds
// sims:create on it (grant_coverage: on it or an ancestor), whether the MNO
// integration, if any, belongs to it or an ancestor (company_lineage).
// Joins rather than correlated subqueries: the planner hashes them, keeping
// a batch linear in its size. Check 7 is the insert's: looking each ICCID up
// here first cost more than the rare batch that meets a taken one pays
// (app.ErrICCIDTaken).
const factsSQL = `
	WITH input AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(device_id, actor_id, mno_id, n)
	), placed AS (
		SELECT i.n, i.actor_id, i.mno_id, d.company_id FROM input i LEFT JOIN devices d ON d.id = i.device_id
	), allowed AS (
		SELECT DISTINCT p.n FROM placed p
		JOIN grant_coverage a ON a.company_id = p.company_id AND a.user_id = p.actor_id AND a.permission = $4
	), usable AS (
		SELECT DISTINCT p.n FROM placed p
		JOIN company_lineage l ON l.company_id = p.company_id
		JOIN mno_integrations m ON m.company_id = l.ancestor_id AND m.id = p.mno_id
	)
	SELECT p.company_id, allowed.n IS NOT NULL, p.mno_id IS NULL OR usable.n IS NOT NULL
	FROM placed p
	LEFT JOIN allowed ON allowed.n = p.n
	LEFT JOIN usable ON usable.n = p.n
	ORDER BY p.n`

// queueFacts queues factsSQL for cmds on a pipeline.
func queueFacts(b *pgx.Batch, cmds []*domain.Command) {
	devices, actors := make([]string, len(cmds)), make([]string, len(cmds))
	mnos := make([]*string, len(cmds))
	for k, c := range cmds {
		devices[k], actors[k], mnos[k] = c.Sim.DeviceID, c.ActorID, c.Sim.MNOIntegrationID
	}
	b.Queue(factsSQL, devices, actors, mnos, domain.PermissionCreateSIM)
}

// readFacts reads the answer to queueFacts, n rows.
func readFacts(br pgx.BatchResults, n int) ([]domain.Facts, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	facts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Facts, error) {
		var f domain.Facts
		err := r.Scan(&f.CompanyID, &f.Allowed, &f.MNOUsable)
		return f, err
	})
	if err == nil && len(facts) != n {
		err = fmt.Errorf("access check returned %d rows for %d commands", len(facts), n)
	}
	return facts, err
}

// simCopyColumns are the columns the SIMs are written with; the others
// take their defaults, which domain.Sim's zero values match.
var simCopyColumns = []string{"id", "company_id", "device_id", "mno_integration_id", "iccid", "msisdn", "status",
	"communication_plan", "rate_plan", "sim_metadata", "created_at", "created_by", "updated_at", "updated_by"}

// copySims writes sims with COPY.
func copySims(ctx context.Context, db executor, sims []domain.Sim) error {
	if len(sims) == 0 {
		return nil
	}
	row := make([]any, len(simCopyColumns))
	_, err := db.CopyFrom(ctx, pgx.Identifier{"sims"}, simCopyColumns, pgx.CopyFromSlice(len(sims), func(k int) ([]any, error) {
		s := &sims[k]
		id, err := binaryUUID(s.ID)
		if err != nil {
			return nil, err
		}
		row[0], row[1], row[2], row[3], row[4], row[5], row[6] = id, s.CompanyID, s.DeviceID, s.MNOIntegrationID, s.ICCID, s.MSISDN, s.Status
		row[7], row[8], row[9], row[10], row[11], row[12], row[13] = s.CommunicationPlan, s.RatePlan, []byte(s.SimMetadata), s.CreatedAt,
			s.CreatedBy, s.UpdatedAt, s.UpdatedBy
		return row, nil
	}))
	return err
}

// insertSimsSQL inserts SIMs given as arrays, one element each, at the time $12.
const insertSimsSQL = `
	INSERT INTO sims (id, company_id, device_id, mno_integration_id, iccid, msisdn, status,
	                  communication_plan, rate_plan, sim_metadata, created_at, created_by, updated_at, updated_by)
	SELECT id, company_id, device_id, mno_id, iccid, msisdn, status, comm, rate, md::jsonb, $12, actor, $12, actor
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	            $8::text[], $9::text[], $10::text[], $11::text[])
	     AS t(id, company_id, device_id, mno_id, iccid, msisdn, status, comm, rate, md, actor)`

// simArrays are the arguments of insertSimsSQL for sims (all made at one
// time, as app makes them).
func simArrays(sims []domain.Sim) []any {
	n := len(sims)
	ids := make([]pgtype.UUID, n)
	companies, devices, iccids, statuses, actors, metadata := make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n)
	mnos, msisdns, comms, rates := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	for k, s := range sims {
		ids[k], _ = binaryUUID(s.ID)
		companies[k], devices[k], iccids[k], statuses[k], actors[k], metadata[k] = s.CompanyID, s.DeviceID, s.ICCID, s.Status, s.CreatedBy, string(s.SimMetadata)
		mnos[k], msisdns[k], comms[k], rates[k] = s.MNOIntegrationID, s.MSISDN, s.CommunicationPlan, s.RatePlan
	}
	return []any{ids, companies, devices, mnos, iccids, msisdns, statuses, comms, rates, metadata, actors, sims[0].CreatedAt}
}

// queueInsertSims queues the insert of sims on a pipeline.
func queueInsertSims(b *pgx.Batch, sims []domain.Sim) { b.Queue(insertSimsSQL, simArrays(sims)...) }

// insertSimsSkippingTaken inserts sims with ON CONFLICT on the ICCID and
// returns those stored: a concurrent insert of the same ICCID waits for the
// first transaction and then reports the conflict, without aborting this
// one.
func insertSimsSkippingTaken(ctx context.Context, db executor, sims []domain.Sim) ([]domain.Sim, error) {
	if len(sims) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, insertSimsSQL+`
	ON CONFLICT ON CONSTRAINT sims_iccid_key DO NOTHING
	RETURNING iccid`, simArrays(sims)...)
	if err != nil {
		return nil, err
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	in := make(map[string]bool, len(stored))
	for _, iccid := range stored {
		in[iccid] = true
	}
	kept := sims[:0]
	for _, s := range sims {
		if in[s.ICCID] {
			kept = append(kept, s)
		}
	}
	return kept, nil
}

// simColumns are the columns of a sims row as scanSim reads them.
const simColumns = `id::text, company_id, device_id, mno_integration_id, iccid, msisdn, status,
	communication_plan, rate_plan, sim_metadata::text, ctd_data_usage, ctd_sms_usage, included_usage,
	overage_limit_reached, sim_barred, last_sync_at, created_at, created_by, updated_at, updated_by`

// scanSim reads a row of simColumns. Times are in UTC, as the events carry
// them. Scanned by hand: pgx.RowToStructByName, which matches columns to
// fields by name for every row, took twice the CPU (0.6 ms more per batch of
// 500) and 110 KB more.
func scanSim(row pgx.CollectableRow) (domain.Sim, error) {
	var s domain.Sim
	err := row.Scan(&s.ID, &s.CompanyID, &s.DeviceID, &s.MNOIntegrationID, &s.ICCID, &s.MSISDN, &s.Status,
		&s.CommunicationPlan, &s.RatePlan, &s.SimMetadata, &s.CtdDataUsage, &s.CtdSMSUsage, &s.IncludedUsage,
		&s.OverageLimitReached, &s.SimBarred, &s.LastSyncAt, &s.CreatedAt, &s.CreatedBy, &s.UpdatedAt, &s.UpdatedBy)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, err
}

// SimFor returns the SIM id when userID holds one of permissions on its
// company, a grant covering the company's descendants (app.SimStore).
func (s *Storage) SimFor(ctx context.Context, id, userID string, permissions []string) (*domain.Sim, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+simColumns+` FROM sims s
		WHERE s.id = $1 AND EXISTS (SELECT 1 FROM grant_coverage a
		                            WHERE a.company_id = s.company_id AND a.user_id = $2 AND a.permission = ANY($3))`,
		id, userID, permissions)
	if err != nil {
		return nil, translate(err)
	}
	sims, err := pgx.CollectRows(rows, scanSim)
	if err != nil || len(sims) == 0 {
		return nil, translate(err)
	}
	return &sims[0], nil
}
