package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"simworker/app"
	"simworker/internal/testfactory"
	"simworker/repo"
	"simworker/repo/repotest"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := repotest.NewDB(t)
	a := app.New(repo.New(pool), "")
	repotest.Load(t, pool, testfactory.World())
	if _, _, err := a.CreateToken(ctx, "u-nobody", "", time.Time{}); !errors.Is(err, app.ErrUnknownUser) || !strings.Contains(err.Error(), "u-nobody") {
		t.Fatalf("unknown user: %v", err)
	}
	tok, info, err := a.CreateToken(ctx, "u-alice", "ci", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "sim_"+info.ID+".") || len(tok) < len("sim_")+36+1+43 {
		t.Fatalf("token %q (id %s): want sim_<id>.<256-bit secret>", tok, info.ID)
	}
	var stored []byte
	if err := pool.QueryRow(ctx, `SELECT secret_hash FROM api_tokens WHERE id = $1`, info.ID).Scan(&stored); err != nil || len(stored) != 32 {
		t.Fatalf("stored %x, %v: want a 32-byte hash", stored, err)
	}
	if strings.Contains(tok, string(stored)) {
		t.Fatal("the stored hash appears in the token")
	}
	auth := func(token string) bool {
		t.Helper()
		user, id, ok, err := a.Authenticate(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		if ok && (user != "u-alice" || id != info.ID) {
			t.Fatalf("authenticated as %s/%s", user, id)
		}
		return ok
	}
	if !auth(tok) {
		t.Fatal("a fresh token does not authenticate")
	}
	for _, bad := range []string{"", "sim_", tok + "x", tok[:len(tok)-1], "sim_" + info.ID, strings.Replace(tok, "sim_", "tok_", 1)} {
		if auth(bad) {
			t.Fatalf("%q authenticates", bad)
		}
	}
	expired, _, err := a.CreateToken(ctx, "u-alice", "", time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if auth(expired) {
		t.Fatal("an expired token authenticates")
	}
	list, err := a.Tokens(ctx, "u-alice")
	if err != nil || len(list) != 2 || list[0].ID != info.ID || list[0].Name != "ci" || list[0].RevokedAt != nil {
		t.Fatalf("list: %+v %v", list, err)
	}
	if ok, err := a.RevokeToken(ctx, info.ID); err != nil || !ok {
		t.Fatalf("revoke by id: %v %v", ok, err)
	}
	if auth(tok) {
		t.Fatal("a revoked token authenticates")
	}
	if ok, err := a.RevokeToken(ctx, expired); err != nil || !ok {
		t.Fatalf("revoke by token: %v %v", ok, err)
	}
	if ok, _ := a.RevokeToken(ctx, "sim_0193a3f0-6c1e-7b7e-9a55-3f1c2d3e4f50.x"); ok {
		t.Fatal("revoked a token that does not exist")
	}
}

// TestRecordCommandsBatch: one statement records a batch that repeats a key,
// reuses a key recorded before, shares a key with another user and has
// requests without a key; each gets the command a statement per request
// would give it.
func TestRecordCommandsBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := repotest.NewDB(t)
	a := app.New(repo.New(pool), "")
	k1, k2 := "k1", "k2"
	if _, made, err := recordOne(ctx, a, "u-alice", &k2, []byte("old"), "c-old"); !made || err != nil {
		t.Fatalf("first record: %v %v", made, err)
	}
	got, err := a.RecordCommands(ctx, []app.CommandRequest{
		{UserID: "u-alice", Key: &k1, BodyHash: []byte("a"), CommandID: "c-1"},
		{UserID: "u-alice", Key: &k1, BodyHash: []byte("b"), CommandID: "c-2"},
		{UserID: "u-alice", Key: &k2, BodyHash: []byte("c"), CommandID: "c-3"},
		{UserID: "u-bob", Key: &k1, BodyHash: []byte("d"), CommandID: "c-4"},
		{UserID: "u-alice", BodyHash: []byte("e"), CommandID: "c-5"},
		{UserID: "u-alice", BodyHash: []byte("e"), CommandID: "c-6"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, hash string
		created  bool
	}{{"c-1", "a", true}, {"c-1", "a", false}, {"c-old", "old", false}, {"c-4", "d", true}, {"c-5", "e", true}, {"c-6", "e", true}}
	for i, w := range want {
		if g := got[i]; g.Command.CommandID != w.id || string(g.Command.BodyHash) != w.hash || g.Created != w.created {
			t.Errorf("request %d: got %s %q created %v, want %s %q created %v", i, g.Command.CommandID, g.Command.BodyHash, g.Created, w.id, w.hash, w.created)
		}
	}
	for _, c := range []struct{ id, user string }{{"c-1", "u-alice"}, {"c-4", "u-bob"}, {"c-6", "u-alice"}} {
		if ok, err := a.CommandOf(ctx, c.id, c.user); !ok || err != nil {
			t.Errorf("%s is not %s's command: %v", c.id, c.user, err)
		}
	}
	if ok, _ := a.CommandOf(ctx, "c-2", "u-alice"); ok {
		t.Error("c-2 was recorded though its key held c-1")
	}
}

// TestRecordCommandRace: requests racing on one key all get one command.
func TestRecordCommandRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := repotest.NewDB(t)
	a := app.New(repo.New(pool), "")
	key := "k"
	ids := make([]string, 20)
	created := make([]bool, 20)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, made, err := recordOne(ctx, a, "u-alice", &key, []byte("hash"), "cmd-"+string(rune('a'+i)))
			if err != nil {
				t.Error(err)
			}
			ids[i], created[i] = c.CommandID, made
		}()
	}
	wg.Wait()
	made := 0
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("two commands for one key: %s, %s", ids[0], ids[i])
		}
		if created[i] {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d requests made the command", made)
	}
	// Another user's same key, and no key at all, are new commands.
	if c, made, _ := recordOne(ctx, a, "u-bob", &key, []byte("hash"), "cmd-bob"); !made || c.CommandID != "cmd-bob" {
		t.Fatalf("another user's key: %+v %v", c, made)
	}
	for _, id := range []string{"n-1", "n-2"} {
		if _, made, err := recordOne(ctx, a, "u-alice", nil, []byte("hash"), id); !made || err != nil {
			t.Fatalf("no key: %v %v", made, err)
		}
	}
}

// TestCrashedAttempts: an attempt still in progress when the next begins
// counts as a crash; one that ended (handed back) does not, and keeps the
// count; a decided command's mark goes.
func TestCrashedAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := repotest.NewDB(t)
	a := app.New(repo.New(pool), "")
	s := a
	n := 0
	step := func(want int) {
		t.Helper()
		n++
		if got, err := s.BeginAttempt(ctx, "c-1", fmt.Sprintf("attempt-%d", n)); err != nil || got != want {
			t.Fatalf("BeginAttempt: %d crashes (%v), want %d", got, err, want)
		}
	}
	step(0) // first attempt
	step(1) // the first never ended: a crash
	if got, err := s.BeginAttempt(ctx, "c-1", fmt.Sprintf("attempt-%d", n)); err != nil || got != 1 {
		t.Fatalf("the same attempt marked again (its first answer lost): %d crashes (%v), want still 1", got, err)
	}
	step(2) // and a crash again
	// Another attempt's end leaves the mark (and its crash) alone; its own
	// end, handed back, clears it.
	if err := s.EndAttempt(ctx, "c-1", "attempt-other", false); err != nil {
		t.Fatal(err)
	}
	step(3)
	if err := s.EndAttempt(ctx, "c-1", fmt.Sprintf("attempt-%d", n), false); err != nil {
		t.Fatal(err)
	}
	step(3) // a hand-back is no crash, and the count stays
	if err := s.EndAttempt(ctx, "c-1", "any", true); err != nil {
		t.Fatal(err)
	}
	step(0) // decided: the mark went
	if got, err := s.BeginAttempt(ctx, "c-2", "attempt-x"); err != nil || got != 0 {
		t.Fatalf("another command: %d %v", got, err)
	}
}

// recordOne records one request for a command.
func recordOne(ctx context.Context, a *app.App, userID string, key *string, bodyHash []byte, commandID string) (app.APICommand, bool, error) {
	res, err := a.RecordCommands(ctx, []app.CommandRequest{{UserID: userID, Key: key, BodyHash: bodyHash, CommandID: commandID}})
	if err != nil {
		return app.APICommand{}, false, err
	}
	return res[0].Command, res[0].Created, nil
}
