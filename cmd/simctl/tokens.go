package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/app"
	"simworker/cmd/internal/cli"
	"simworker/repo"
)

// tokensCreateConfig is the configuration of simctl tokens create.
type tokensCreateConfig struct {
	Database cli.Database
	User     string        `flag:"user" help:"the user the token acts as (required)"`
	Name     string        `flag:"name" help:"what the token is for, shown by tokens list"`
	Expires  time.Duration `flag:"expires" help:"the token expires this long from now (e.g. 720h); 0 never"`
}

// Validate: a user, and no expiry in the past.
func (c *tokensCreateConfig) Validate(ck *cli.Check) {
	if c.User == "" {
		ck.Fail(&c.User, "is required: the user the token acts as")
	}
	ck.NotNegative(&c.Expires)
}

// tokensCreate prints a new API token, and nothing else, as one line.
func tokensCreate(ctx context.Context, cfg *tokensCreateConfig, rest []string, out, _ io.Writer) error {
	if len(rest) != 0 {
		return usageError("tokens create takes no arguments: --user USER_ID [--name TEXT] [--expires DURATION]")
	}
	pool, err := openMigrated(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var expires time.Time
	if cfg.Expires > 0 {
		expires = time.Now().Add(cfg.Expires)
	}
	tok, _, err := tokensApp(pool).CreateToken(ctx, cfg.User, cfg.Name, expires)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

// tokensListConfig is the configuration of simctl tokens list.
type tokensListConfig struct {
	Database cli.Database
	User     string `flag:"user" help:"only this user's tokens"`
}

// tokensList shows the tokens without their secret.
func tokensList(ctx context.Context, cfg *tokensListConfig, rest []string, out, _ io.Writer) error {
	if len(rest) != 0 {
		return usageError("tokens list takes no arguments: [--user USER_ID]")
	}
	pool, err := openMigrated(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := tokensApp(pool).Tokens(ctx, cfg.User)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSER\tNAME\tCREATED\tEXPIRES\tREVOKED")
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, t := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, safe(t.UserID), safe(t.Name), at(&t.CreatedAt), at(t.ExpiresAt), at(t.RevokedAt))
	}
	return w.Flush()
}

// tokensRevokeConfig is the configuration of simctl tokens revoke.
type tokensRevokeConfig struct {
	Database cli.Database
}

// tokensRevoke revokes a token given as itself or as its id.
func tokensRevoke(ctx context.Context, cfg *tokensRevokeConfig, rest []string, out, _ io.Writer) error {
	if len(rest) != 1 {
		return usageError("tokens revoke takes exactly one TOKEN (the token itself, or its id as tokens list shows it)")
	}
	pool, err := openMigrated(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	ok, err := tokensApp(pool).RevokeToken(ctx, rest[0])
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no such token (give the token or its id as simctl tokens list shows it)")
	}
	fmt.Fprintln(out, "revoked: every API process refuses it within 5 seconds")
	return nil
}

// tokensApp is the application on pool, for its tokens.
func tokensApp(pool *pgxpool.Pool) *app.App { return app.New(repo.New(pool), "") }
