package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"simworker/domain"
)

// decideBatch decides a batch with set-based statements, four per batch
// whatever its size: read the stored outcomes of the batch's command ids, run
// checks 4 to 6 for all new commands in one query, insert every SIM in one
// statement, store every new outcome in one statement.
// The outcomes are those of deciding the commands one at a time in the order
// given (decide): a command id seen earlier in the batch gets that earlier
// outcome, and an ICCID wanted by several commands goes to the first of them
// that passes checks 4 to 6.
func (s *Store) decideBatch(ctx context.Context, tx pgx.Tx, envs []domain.Envelope) ([]domain.Outcome, error) {
	outs := make([]domain.Outcome, len(envs))
	// first[i] is the index of the first envelope with envs[i]'s command id.
	first := make([]int, len(envs))
	firstOf := make(map[string]int, len(envs))
	ids := make([]string, 0, len(envs))
	for i, env := range envs {
		if env.CommandID == "" {
			return nil, fmt.Errorf("envelope %d without a command id reached the store", i)
		}
		if j, ok := firstOf[env.CommandID]; ok {
			first[i] = j
			continue
		}
		first[i], firstOf[env.CommandID] = i, i
		ids = append(ids, env.CommandID)
	}

	// Outcomes stored by earlier transactions. A command decided concurrently
	// by another worker and not yet committed is caught at the end, when its
	// processed_commands row conflicts.
	prev, err := storedOutcomes(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	claimed := make(map[string]bool, len(ids))
	for _, id := range ids {
		if o, ok := prev[id]; ok {
			outs[firstOf[id]] = o
		} else {
			claimed[id] = true
		}
	}

	now := s.now().UTC().Truncate(time.Microsecond)
	reject := func(i int, e *domain.Error) {
		outs[i] = domain.NewRejected(s.source, newID(), envs[i].CommandID, now, e)
	}
	// The new commands that passed checks 1 to 3 go on to the database checks.
	var checkIdx []int
	for i, env := range envs {
		if first[i] != i || !claimed[env.CommandID] {
			continue
		}
		if env.Reject != nil {
			reject(i, env.Reject)
			continue
		}
		checkIdx = append(checkIdx, i)
	}
	if len(checkIdx) > 0 {
		access, err := checkAccessAll(ctx, tx, envs, checkIdx)
		if err != nil {
			return nil, err
		}
		// Candidates for insertion: the first command (in batch order) to want
		// each ICCID; a later one can only find it taken.
		var insertIdx []int
		wanted := map[string]bool{}
		var later []int
		companyOf := make(map[int]string, len(checkIdx))
		for k, i := range checkIdx {
			a := access[k]
			if a.companyID != nil {
				companyOf[i] = *a.companyID
			}
			switch {
			case a.companyID == nil:
				reject(i, errDeviceNotFound)
			case !a.allowed:
				reject(i, errUnauthorized(*a.companyID))
			case !a.mnoUsable:
				reject(i, errMNONotFound)
			case wanted[envs[i].Command.Sim.ICCID]:
				later = append(later, i)
			default:
				wanted[envs[i].Command.Sim.ICCID] = true
				insertIdx = append(insertIdx, i)
			}
		}
		simIDs := make([]string, len(insertIdx))
		companies := make([]string, len(insertIdx))
		for k, i := range insertIdx {
			simIDs[k], companies[k] = newID(), companyOf[i]
		}
		sims, err := insertSims(ctx, tx, envs, insertIdx, simIDs, companies, now)
		if err != nil {
			return nil, err
		}
		for k, i := range insertIdx {
			sim, ok := sims[simIDs[k]]
			if !ok {
				reject(i, errICCIDTaken)
				continue
			}
			if outs[i], err = domain.NewCreated(s.source, newID(), envs[i].CommandID, sim); err != nil {
				return nil, err
			}
		}
		for _, i := range later {
			reject(i, errICCIDTaken)
		}
	}

	var fresh []domain.Outcome
	for _, id := range ids {
		if claimed[id] {
			fresh = append(fresh, outs[firstOf[id]])
		}
	}
	if err := insertOutcomes(ctx, tx, fresh); err != nil {
		return nil, err
	}
	for i := range envs {
		if first[i] != i {
			o := outs[first[i]]
			o.Replayed = true
			outs[i] = o
		}
	}
	return outs, nil
}

// The rejections of checks 4 to 7.
var (
	errDeviceNotFound = &domain.Error{Code: domain.CodeNotFound, Message: "device_id: device not found",
		Fields: []domain.FieldError{{Field: "device_id", Reason: "device not found"}}}
	errMNONotFound = &domain.Error{Code: domain.CodeNotFound,
		Message: "mno_integration_id: MNO integration not found for the SIM's company",
		Fields:  []domain.FieldError{{Field: "mno_integration_id", Reason: "MNO integration not found for the SIM's company"}}}
	errICCIDTaken = &domain.Error{Code: domain.CodeAlreadyExists, Message: "iccid: already taken",
		Fields: []domain.FieldError{{Field: "iccid", Reason: "already taken"}}}
)

func errUnauthorized(companyID string) *domain.Error {
	return &domain.Error{Code: domain.CodeUnauthorized,
		Message: "actor may not create SIMs for company " + companyID, Fields: []domain.FieldError{}}
}

// storedOutcomes reads the outcomes earlier transactions stored.
func storedOutcomes(ctx context.Context, tx pgx.Tx, ids []string) (map[string]domain.Outcome, error) {
	rows, err := tx.Query(ctx, `
		SELECT command_id, event_id::text, event_type, status, coalesce(code, ''), coalesce(sim_id::text, ''), event
		FROM processed_commands WHERE command_id = ANY($1) AND event IS NOT NULL`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]domain.Outcome, len(ids))
	for rows.Next() {
		var (
			o    domain.Outcome
			code string
		)
		if err := rows.Scan(&o.CommandID, &o.EventID, &o.Type, &o.Status, &code, &o.SimID, &o.Event); err != nil {
			return nil, err
		}
		o.Code, o.Replayed = domain.Code(code), true
		out[o.CommandID] = o
	}
	return out, rows.Err()
}

type access struct {
	companyID          *string
	allowed, mnoUsable bool
}

// checkAccessAll runs checks 4 to 6 for the envelopes at idx in one query
// (see checkAccess for one command).
func checkAccessAll(ctx context.Context, tx pgx.Tx, envs []domain.Envelope, idx []int) ([]access, error) {
	devices, actors := make([]string, len(idx)), make([]string, len(idx))
	mnos := make([]*string, len(idx))
	for k, i := range idx {
		c := envs[i].Command
		devices[k], actors[k], mnos[k] = c.Sim.DeviceID, c.ActorID, c.Sim.MNOIntegrationID
	}
	// Joins rather than correlated subqueries over the CTEs: the planner
	// hashes them, keeping a batch linear in its size.
	rows, err := tx.Query(ctx, `
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
		ORDER BY i.n`, devices, actors, mnos, domain.PermissionCreateSIM)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (access, error) {
		var a access
		err := r.Scan(&a.companyID, &a.allowed, &a.mnoUsable)
		return a, err
	})
	if err == nil && len(out) != len(idx) {
		err = fmt.Errorf("access check returned %d rows for %d commands", len(out), len(idx))
	}
	return out, err
}

// insertSims inserts the SIMs of the envelopes at idx (distinct ICCIDs) in
// one statement and returns the inserted rows by SIM id; a SIM whose ICCID is
// taken is simply absent. As for one SIM, ON CONFLICT on the unique
// constraint settles races with other transactions.
func insertSims(ctx context.Context, tx pgx.Tx, envs []domain.Envelope, idx []int, simIDs, companies []string, now time.Time) (map[string]domain.Sim, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	n := len(idx)
	devices, iccids, statuses, actors, metadata := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	mnos, msisdns, comms, rates := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	for k, i := range idx {
		c := envs[i].Command
		in := c.Sim
		devices[k], iccids[k], statuses[k], actors[k], metadata[k] = in.DeviceID, in.ICCID, in.Status, c.ActorID, string(in.SimMetadata)
		mnos[k], msisdns[k], comms[k], rates[k] = in.MNOIntegrationID, in.MSISDN, in.CommunicationPlan, in.RatePlan
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO sims (id, company_id, device_id, mno_integration_id, iccid, msisdn, status,
		                  communication_plan, rate_plan, sim_metadata, created_at, created_by, updated_at, updated_by)
		SELECT id, company_id, device_id, mno_id, iccid, msisdn, status, comm, rate, md::jsonb, $12, actor, $12, actor
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		            $8::text[], $9::text[], $10::text[], $11::text[])
		     AS t(id, company_id, device_id, mno_id, iccid, msisdn, status, comm, rate, md, actor)
		ON CONFLICT ON CONSTRAINT sims_iccid_key DO NOTHING
		RETURNING `+simColumns,
		simIDs, companies, devices, mnos, iccids, msisdns, statuses, comms, rates, metadata, actors, now)
	if err != nil {
		return nil, err
	}
	sims, err := pgx.CollectRows(rows, scanSim)
	if err != nil {
		return nil, err
	}
	out := make(map[string]domain.Sim, len(sims))
	for _, s := range sims {
		out[s.ID] = s
	}
	return out, nil
}

// errRaced: another transaction stored an outcome for one of the batch's
// commands while this one decided it. The batch is rolled back and decided
// again, and then finds that outcome stored.
var errRaced = errors.New("another worker decided a command of the batch concurrently")

// insertOutcomes stores the outcomes with COPY: the events (about 1 KB each)
// stream to the server in bounded chunks instead of one array parameter that
// pgx grows by doubling. The batch's command ids are distinct and none was
// stored when the batch read stored outcomes, so a unique violation on the
// primary key means another transaction decided one of them meanwhile (the
// check waited for it to commit): the whole batch must be decided again.
func insertOutcomes(ctx context.Context, tx pgx.Tx, outs []domain.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	row := make([]any, 7)
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"processed_commands"},
		[]string{"command_id", "event_id", "event_type", "status", "code", "sim_id", "event"},
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
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "processed_commands_pkey" {
		return errRaced
	}
	return err
}

func binaryUUID(s string) (pgtype.UUID, error) {
	u, err := uuid.Parse(s)
	return pgtype.UUID{Bytes: u, Valid: err == nil}, err
}
