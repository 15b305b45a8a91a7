package repo

import (
	"context"
	"errors"
	"fmt"

	"simworker/domain"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// FixtureCounts says how many rows of each kind a load inserted or changed.
type FixtureCounts struct {
	Companies, Users, Grants, Devices, MNOIntegrations int64
}

func (c FixtureCounts) String() string {
	return fmt.Sprintf("companies %d, users %d, grants %d, devices %d, mno_integrations %d",
		c.Companies, c.Users, c.Grants, c.Devices, c.MNOIntegrations)
}

// Total is the number of rows inserted or changed.
func (c FixtureCounts) Total() int64 {
	return c.Companies + c.Users + c.Grants + c.Devices + c.MNOIntegrations
}

// LoadFixtures upserts the fixtures in one transaction: rows are inserted or
// updated to match the file, never deleted, so loading the same file twice
// changes nothing (the second load reports zero changes). A reference to a
// row that exists neither in the file nor in the database, or a cycle in the
// company tree, fails the whole load.
func (s *Storage) LoadFixtures(ctx context.Context, f *domain.Fixtures) (FixtureCounts, error) {
	var n FixtureCounts
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var ids, names, parents, others []string
		exec := func(dst *int64, sql string, args ...any) error {
			tag, err := tx.Exec(ctx, sql, args...)
			*dst = tag.RowsAffected()
			return err
		}

		ids, names, parents = nil, nil, nil
		var parentPtrs []*string
		for _, c := range f.Companies {
			ids, names, parentPtrs = append(ids, c.ID), append(names, c.Name), append(parentPtrs, c.ParentID)
		}
		if err := exec(&n.Companies, `
			INSERT INTO companies (id, name, parent_id)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, parent_id = EXCLUDED.parent_id
			WHERE (companies.name, companies.parent_id) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.parent_id)`,
			ids, names, parentPtrs); err != nil {
			return err
		}

		ids, names = nil, nil
		for _, u := range f.Users {
			ids, names = append(ids, u.ID), append(names, u.Name)
		}
		if err := exec(&n.Users, `
			INSERT INTO users (id, name) SELECT * FROM unnest($1::text[], $2::text[])
			ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name WHERE users.name IS DISTINCT FROM EXCLUDED.name`,
			ids, names); err != nil {
			return err
		}

		ids, parents, others = nil, nil, nil
		for _, g := range f.Grants {
			ids, parents, others = append(ids, g.UserID), append(parents, g.CompanyID), append(others, g.Permission)
		}
		if err := exec(&n.Grants, `
			INSERT INTO grants (user_id, company_id, permission) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT DO NOTHING`, ids, parents, others); err != nil {
			return err
		}

		for _, table := range []struct {
			dst  *int64
			name string
			rows func() ([]string, []string, []string)
		}{
			{&n.Devices, "devices", func() (a, b, c []string) {
				for _, d := range f.Devices {
					a, b, c = append(a, d.ID), append(b, d.CompanyID), append(c, d.Name)
				}
				return
			}},
			{&n.MNOIntegrations, "mno_integrations", func() (a, b, c []string) {
				for _, m := range f.MNOIntegrations {
					a, b, c = append(a, m.ID), append(b, m.CompanyID), append(c, m.Name)
				}
				return
			}},
		} {
			a, b, c := table.rows()
			// table.name is one of two constants above, never input.
			if err := exec(table.dst, `
				INSERT INTO `+table.name+` AS t (id, company_id, name) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
				ON CONFLICT (id) DO UPDATE SET company_id = EXCLUDED.company_id, name = EXCLUDED.name
				WHERE (t.company_id, t.name) IS DISTINCT FROM (EXCLUDED.company_id, EXCLUDED.name)`, a, b, c); err != nil {
				return err
			}
		}

		var cyclic *string
		// A company is its own ancestor when it is among its parent's.
		if err := tx.QueryRow(ctx, `
			SELECT min(c.id) FROM companies c
			JOIN company_lineage l ON l.company_id = c.parent_id AND l.ancestor_id = c.id`).Scan(&cyclic); err != nil {
			return err
		}
		if cyclic != nil {
			return fmt.Errorf("fixtures: company %q is its own ancestor (the parent_id links form a cycle)", *cyclic)
		}
		// Deferred foreign keys are checked here.
		_, err := tx.Exec(ctx, `SET CONSTRAINTS ALL IMMEDIATE`)
		return err
	})
	return n, fixtureError(err)
}

// fixtureError names the missing row behind a foreign key violation.
func fixtureError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return fmt.Errorf("fixtures: a reference points at a row that does not exist (%s: %s)", pgErr.TableName, pgErr.Detail)
	}
	return translate(err)
}
