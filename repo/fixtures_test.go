package repo_test

import (
	"context"
	"strings"
	"testing"

	"simworker/deploy"
	"simworker/domain"
	"simworker/repo"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

func TestFixturesLoadTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	pool, _ := repotest.NewDB(t)
	ctx := context.Background()
	f, err := domain.ParseFixtures(deploy.DemoFixtures)
	if err != nil {
		t.Fatal(err)
	}
	first, err := repo.LoadFixtures(ctx, pool, f)
	if err != nil {
		t.Fatal(err)
	}
	if first.Companies != 3 || first.Users != 3 || first.Grants != 2 || first.Devices != 3 || first.MNOIntegrations != 2 {
		t.Fatalf("first load: %s", first)
	}
	second, err := repo.LoadFixtures(ctx, pool, f)
	if err != nil {
		t.Fatal(err)
	}
	if second.Total() != 0 {
		t.Fatalf("second load changed %s", second)
	}
	// A changed name is an update of one row.
	f.Devices[0].Name = "renamed"
	third, err := repo.LoadFixtures(ctx, pool, f)
	if err != nil {
		t.Fatal(err)
	}
	if third.Total() != 1 || third.Devices != 1 {
		t.Fatalf("rename: %s", third)
	}
}

func TestFixturesRejectBadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", `{"companies": [], "sims": []}`, "unknown field"},
		{"wrong type", `{"companies": [{"id": 5}]}`, "cannot unmarshal"},
		{"missing id", `{"users": [{"name": "x"}]}`, "users[0].id is required"},
		{"own parent", `{"companies": [{"id": "a", "name": "A", "parent_id": "a"}]}`, "its own parent"},
		{"not JSON", `nope`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.ParseFixtures([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestFixturesRejectDanglingAndCycles(t *testing.T) {
	t.Parallel()
	pool, _ := repotest.NewDB(t)
	ctx := context.Background()
	for name, doc := range map[string]string{
		"device of a missing company": `{"devices": [{"id": "d", "company_id": "co-missing", "name": "D"}]}`,
		"grant of a missing user":     `{"companies": [{"id": "c", "name": "C"}], "grants": [{"user_id": "u", "company_id": "c", "permission": "sims:create"}]}`,
		"cycle":                       `{"companies": [{"id": "a", "name": "A", "parent_id": "b"}, {"id": "b", "name": "B", "parent_id": "a"}]}`,
	} {
		f, err := domain.ParseFixtures([]byte(doc))
		if err != nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		if _, err := repo.LoadFixtures(ctx, pool, f); err == nil {
			t.Fatalf("%s: loaded", name)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM companies) + (SELECT count(*) FROM devices)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a failed load left %d rows", n)
	}
}

// TestMigrateConcurrently: several workers starting at once on an empty
// database all succeed and the schema is applied once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := repotest.NewDatabase(t)
	ctx := context.Background()
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		go func() {
			pool, err := repo.Open(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			errs <- repo.Migrate(ctx, pool)
		}()
	}
	for i := 0; i < 5; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
}
