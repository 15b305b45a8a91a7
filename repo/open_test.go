package repo_test

import (
	"context"
	"net/url"
	"testing"

	"simworker/repo"
	"simworker/repo/repotest"
)

// TestOpenFixesPlans: connections from Open plan once (generic plans) and
// never scan a table sequentially nor JIT-compile; a setting in the connection string wins.
func TestOpenFixesPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	show := func(dbURL string) (string, string) {
		t.Helper()
		pool, err := repo.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		var mode, seqscan, jit string
		if err := pool.QueryRow(ctx, "SELECT current_setting('plan_cache_mode'), current_setting('enable_seqscan'), current_setting('jit')").Scan(&mode, &seqscan, &jit); err != nil {
			t.Fatal(err)
		}
		if jit != "off" {
			t.Errorf("jit %s, want off", jit)
		}
		return mode, seqscan
	}
	dbURL := repotest.NewDatabase(t)
	if mode, seqscan := show(dbURL); mode != "force_generic_plan" || seqscan != "off" {
		t.Errorf("plan_cache_mode %s, enable_seqscan %s; want force_generic_plan, off", mode, seqscan)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "options=-c%20plan_cache_mode%3Dauto" // %20, not +: libpq's URL rules
	if mode, seqscan := show(u.String()); mode != "auto" || seqscan != "off" {
		t.Errorf("with options=-c plan_cache_mode=auto: plan_cache_mode %s, enable_seqscan %s; want auto, off", mode, seqscan)
	}
}
