package repo_test

import (
	"context"
	"strings"
	"testing"

	"simworker/app"
	"simworker/deploy"
	"simworker/domain"
	"simworker/internal/testfactory"
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
	first, err := repo.New(pool).LoadFixtures(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if first.Companies != 3 || first.Users != 3 || first.Grants != 2 || first.Devices != 3 || first.MNOIntegrations != 2 {
		t.Fatalf("first load: %s", first)
	}
	second, err := repo.New(pool).LoadFixtures(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if second.Total() != 0 {
		t.Fatalf("second load changed %s", second)
	}
	// A changed name is an update of one row.
	f.Devices[0].Name = "renamed"
	third, err := repo.New(pool).LoadFixtures(ctx, f)
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
		_, err = repo.New(pool).LoadFixtures(ctx, f)
		if want := map[bool]string{true: "is its own ancestor", false: "does not exist"}[name == "cycle"]; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want an error saying %q", name, err, want)
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

// TestCompanyTreeMoves: the tree rule follows the reference data. A company
// moved to another parent by a later load leaves the grants and MNO
// integrations of its old ancestors and comes under those of its new ones,
// for the checks of a command and for reading a SIM alike; a move that
// would make a company its own ancestor is refused and changes nothing.
func TestCompanyTreeMoves(t *testing.T) {
	t.Parallel()
	pool, _ := repotest.NewDB(t)
	ctx := context.Background()
	store := repo.New(pool)
	a := app.New(store, "")
	world := func(parent string) *domain.Fixtures {
		f := &domain.Fixtures{}
		return f.Company("co-a", "").Company("co-b", "").Company("co-mid", parent).Company("co-leaf", "co-mid").
			User("u-a").User("u-b").
			Grant("u-a", "co-a", domain.PermissionCreateSIM).Grant("u-b", "co-b", domain.PermissionReadSIM).
			Device("d-leaf", "co-leaf").MNOIntegration("m-a", "co-a").MNOIntegration("m-b", "co-b")
	}
	decide := func(actor, mno string) domain.Outcome {
		t.Helper()
		c := testfactory.Command{Actor: actor, Sim: testfactory.Sim{DeviceID: "d-leaf"}}
		if mno != "" {
			c.Sim.MNOIntegrationID = &mno
		}
		outs, err := a.Handle(ctx, []domain.Envelope{c.WithDefaults().Envelope()})
		if err != nil {
			t.Fatal(err)
		}
		return outs[0]
	}
	if _, err := store.LoadFixtures(ctx, world("co-a")); err != nil {
		t.Fatal(err)
	}
	created := decide("u-a", "m-a")
	if created.Status != 201 {
		t.Fatalf("under co-a, u-a with m-a: %d %s", created.Status, created.Code)
	}
	if sim, err := a.VisibleSim(ctx, created.SimID, "u-b"); err != nil || sim != nil {
		t.Fatalf("u-b reads co-b only, the SIM is under co-a: %v %v", sim, err)
	}

	if _, err := store.LoadFixtures(ctx, world("co-b")); err != nil {
		t.Fatal(err)
	}
	if o := decide("u-a", ""); o.Status != 401 || o.Code != domain.CodeUnauthorized {
		t.Fatalf("co-mid moved under co-b, u-a's grant no longer covers it: %d %s", o.Status, o.Code)
	}
	if sim, err := a.VisibleSim(ctx, created.SimID, "u-b"); err != nil || sim == nil || sim.ID != created.SimID {
		t.Fatalf("u-b's grant on co-b now covers the SIM's company: %v %v", sim, err)
	}
	if sim, err := a.VisibleSim(ctx, created.SimID, "u-a"); err != nil || sim != nil {
		t.Fatalf("u-a's grant no longer covers it: %v %v", sim, err)
	}

	cyclic := world("co-leaf") // co-mid under its own child
	if _, err := store.LoadFixtures(ctx, cyclic); err == nil || !strings.Contains(err.Error(), "is its own ancestor") {
		t.Fatalf("a cycle made by a later load: %v", err)
	}
	if sim, err := a.VisibleSim(ctx, created.SimID, "u-b"); err != nil || sim == nil {
		t.Fatalf("the refused load changed the tree: %v %v", sim, err)
	}
}
