package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"simworker/domain"
)

// factsSQL fetches the facts of checks 4 to 6 for a batch's commands in one
// query, in their order: the device's company, whether the actor holds
// sims:create on it or an ancestor, whether the MNO integration, if any,
// belongs to it or an ancestor. UNION (not UNION ALL) ends the walk up the
// tree even if the data holds a cycle. Joins rather than correlated
// subqueries over the CTEs: the planner hashes them, keeping a batch linear
// in its size. Check 7 is the insert's: looking each ICCID up here first
// cost more than the rare batch that meets a taken one pays (insertSims).
const factsSQL = `
	WITH RECURSIVE input AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(device_id, actor_id, mno_id, n)
	), chain(n, id) AS (
		SELECT i.n, d.company_id FROM input i JOIN devices d ON d.id = i.device_id
		UNION
		SELECT ch.n, c.parent_id FROM chain ch JOIN companies c ON c.id = ch.id WHERE c.parent_id IS NOT NULL
	), allowed AS (
		SELECT DISTINCT ch.n FROM chain ch JOIN input i ON i.n = ch.n
		JOIN grants g ON g.company_id = ch.id AND g.user_id = i.actor_id AND g.permission = $4
	), usable AS (
		SELECT DISTINCT ch.n FROM chain ch JOIN input i ON i.n = ch.n
		JOIN mno_integrations m ON m.company_id = ch.id AND m.id = i.mno_id
	)
	SELECT d.company_id, allowed.n IS NOT NULL, i.mno_id IS NULL OR usable.n IS NOT NULL
	FROM input i
	LEFT JOIN devices d ON d.id = i.device_id
	LEFT JOIN allowed ON allowed.n = i.n
	LEFT JOIN usable ON usable.n = i.n
	ORDER BY i.n`

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

// dbtx is what the statements here run on: a connection or a
// transaction.
type dbtx interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
}

// makeSims makes the candidates' SIMs as the table's defaults would: the
// stored row, byte for byte in the event (TestCreatedEventIsTheStoredRow).
func makeSims(cands []domain.Candidate, now time.Time) []domain.Sim {
	sims := make([]domain.Sim, len(cands))
	for k, c := range cands {
		in := &c.Command.Sim
		sims[k] = domain.Sim{ID: newID(), CompanyID: c.CompanyID, DeviceID: in.DeviceID, MNOIntegrationID: in.MNOIntegrationID,
			ICCID: in.ICCID, MSISDN: in.MSISDN, Status: in.Status, CommunicationPlan: in.CommunicationPlan, RatePlan: in.RatePlan,
			SimMetadata: in.SimMetadata, CreatedAt: now, CreatedBy: c.Command.ActorID, UpdatedAt: now, UpdatedBy: c.Command.ActorID}
	}
	return sims
}

// simCopyColumns are the columns the SIMs are written with; the others
// take their defaults, which domain.Sim's zero values match.
var simCopyColumns = []string{"id", "company_id", "device_id", "mno_integration_id", "iccid", "msisdn", "status",
	"communication_plan", "rate_plan", "sim_metadata", "created_at", "created_by", "updated_at", "updated_by"}

// copySims writes sims with COPY.
func copySims(ctx context.Context, db dbtx, sims []domain.Sim) error {
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
// time, makeSims').
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

// insertSimsRacing inserts sims with ON CONFLICT on the ICCID and returns
// those stored: a concurrent insert of the same ICCID waits for the first
// transaction and then reports the conflict, without aborting this one.
func insertSimsRacing(ctx context.Context, db dbtx, sims []domain.Sim) ([]domain.Sim, error) {
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
