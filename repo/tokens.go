package repo

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"simworker/app"
)

// InsertToken stores a new token (app.TokenStore): an unknown user is
// app.ErrUnknownUser.
func (s *Storage) InsertToken(ctx context.Context, t app.Token, secretHash []byte) (app.Token, error) {
	err := s.pool.QueryRow(ctx, `
		INSERT INTO api_tokens (id, user_id, name, secret_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at, expires_at`, t.ID, t.UserID, t.Name, secretHash, t.ExpiresAt).Scan(&t.CreatedAt, &t.ExpiresAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return app.Token{}, app.ErrUnknownUser
	}
	if err != nil {
		return app.Token{}, translate(err)
	}
	return t, nil
}

// LiveToken returns the user and secret hash of the token id when it is
// neither expired nor revoked (app.TokenStore).
func (s *Storage) LiveToken(ctx context.Context, id string) (userID string, secretHash []byte, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `
		SELECT user_id, secret_hash FROM api_tokens
		WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, id).Scan(&userID, &secretHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, translate(err)
	}
	return userID, secretHash, true, nil
}

// Tokens lists the tokens, of one user when userID is not empty, oldest
// first (app.TokenStore).
func (s *Storage) Tokens(ctx context.Context, userID string) ([]app.Token, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id::text, user_id, name, created_at, expires_at, revoked_at FROM api_tokens
		WHERE $1 = '' OR user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Token, error) {
		var t app.Token
		err := r.Scan(&t.ID, &t.UserID, &t.Name, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt)
		return t, err
	})
	return list, translate(err)
}

// RevokeToken revokes the token id, keeping the first time it was
// (app.TokenStore).
func (s *Storage) RevokeToken(ctx context.Context, id string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}
