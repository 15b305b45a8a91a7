package main

import (
	"context"
	"strings"
	"testing"

	"simworker/repo/repotest"
)

func TestTokensCommands(t *testing.T) {
	pool, dbURL := repotest.NewDB(t)
	repotest.LoadDemo(t, pool)
	t.Setenv("DATABASE_URL", dbURL)
	out, _, err := simctl(t, "tokens", "create", "--user", "u-alice", "--name", "ci", "--expires", "24h")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSuffix(out, "\n")
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(tok, "sim_") {
		t.Fatalf("create printed %q, want the token alone on one line", out)
	}
	if _, _, ok, err := tokensApp(pool).Authenticate(context.Background(), tok); !ok || err != nil {
		t.Fatalf("the printed token does not authenticate: %v", err)
	}
	if _, _, err := simctl(t, "tokens", "create", "--user", "u-ghost"); err == nil || !strings.Contains(err.Error(), "u-ghost") {
		t.Fatalf("unknown user: %v", err)
	}
	if _, _, err := simctl(t, "tokens", "create"); err == nil || !strings.Contains(err.Error(), "-user") {
		t.Fatalf("no user: %v", err)
	}
	list, _, err := simctl(t, "tokens", "list", "--user", "u-alice")
	secret := tok[strings.Index(tok, ".")+1:]
	if err != nil || !strings.Contains(list, "ci") || strings.Contains(list, secret) || strings.Count(list, "\n") != 2 {
		t.Fatalf("list: %v\n%s", err, list)
	}
	id := strings.TrimPrefix(tok[:strings.Index(tok, ".")], "sim_")
	if !strings.Contains(list, id) {
		t.Fatalf("list does not show the id %s:\n%s", id, list)
	}
	if _, _, err := simctl(t, "tokens", "revoke", id); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := tokensApp(pool).Authenticate(context.Background(), tok); ok {
		t.Fatal("a revoked token authenticates")
	}
	if _, _, err := simctl(t, "tokens", "revoke", "sim_nothing.x"); err == nil {
		t.Fatal("revoked a token that does not exist")
	}
}
