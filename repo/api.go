package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/domain"
)

// ErrUnknownUser: a token was asked for a user the reference data does not
// hold.
var ErrUnknownUser = errors.New("unknown user")

// TokenInfo is a token as `simctl tokens list` shows it: never its secret.
type TokenInfo struct {
	ID        string
	UserID    string
	Name      string
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

// tokenPrefix marks the API's tokens, so a leaked one is recognisable.
const tokenPrefix = "sim_"

// CreateToken makes a token for userID: "sim_<id>.<secret>", the secret 256
// random bits. Only the secret's SHA-256 is stored; the token itself is
// returned once and cannot be read back. expires zero means no expiry. An
// unknown user is ErrUnknownUser, named.
func CreateToken(ctx context.Context, pool *pgxpool.Pool, userID, name string, expires time.Time) (string, TokenInfo, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", TokenInfo{}, err
	}
	id := uuid.Must(uuid.NewV7())
	enc := base64.RawURLEncoding.EncodeToString(secret)
	hash := sha256.Sum256([]byte(enc))
	info := TokenInfo{ID: id.String(), UserID: userID, Name: name}
	var exp *time.Time
	if !expires.IsZero() {
		exp = &expires
	}
	err := pool.QueryRow(ctx, `
		INSERT INTO api_tokens (id, user_id, name, secret_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at, expires_at`, id, userID, name, hash[:], exp).Scan(&info.CreatedAt, &info.ExpiresAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return "", TokenInfo{}, fmt.Errorf("%w %q", ErrUnknownUser, userID)
	}
	if err != nil {
		return "", TokenInfo{}, translate(err)
	}
	return tokenPrefix + id.String() + "." + enc, info, nil
}

// splitToken returns the id and secret of a well-formed token.
func splitToken(token string) (uuid.UUID, string, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return uuid.UUID{}, "", false
	}
	idText, secret, ok := strings.Cut(rest, ".")
	id, err := uuid.Parse(idText)
	if !ok || err != nil || secret == "" {
		return uuid.UUID{}, "", false
	}
	return id, secret, true
}

// Authenticate returns the user and token id of a valid token: well formed,
// known, its secret's hash equal (compared in constant time), not expired,
// not revoked. ok is false otherwise; err only for a database failure.
func Authenticate(ctx context.Context, pool *pgxpool.Pool, token string) (userID, tokenID string, ok bool, err error) {
	id, secret, wellFormed := splitToken(token)
	if !wellFormed {
		return "", "", false, nil
	}
	var stored []byte
	err = pool.QueryRow(ctx, `
		SELECT user_id, secret_hash FROM api_tokens
		WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, id).Scan(&userID, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, translate(err)
	}
	hash := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(hash[:], stored) != 1 {
		return "", "", false, nil
	}
	return userID, id.String(), true, nil
}

// ListTokens lists the tokens, of one user when userID is not empty, oldest
// first.
func ListTokens(ctx context.Context, pool *pgxpool.Pool, userID string) ([]TokenInfo, error) {
	rows, err := pool.Query(ctx, `
		SELECT id::text, user_id, name, created_at, expires_at, revoked_at FROM api_tokens
		WHERE $1 = '' OR user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TokenInfo, error) {
		var t TokenInfo
		err := r.Scan(&t.ID, &t.UserID, &t.Name, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt)
		return t, err
	})
	return list, translate(err)
}

// RevokeToken revokes a token given as itself or as its id (as ListTokens
// shows it). false when there is no such token; revoking twice keeps the
// first time.
func RevokeToken(ctx context.Context, pool *pgxpool.Pool, tokenOrID string) (bool, error) {
	id, err := uuid.Parse(tokenOrID)
	if err != nil {
		var ok bool
		if id, _, ok = splitToken(tokenOrID); !ok {
			return false, nil
		}
	}
	tag, err := pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// APICommand is a command the API made.
type APICommand struct {
	CommandID string
	UserID    string
	BodyHash  []byte
}

// RecordCommand records that userID asks for a command with the body of
// bodyHash, under key (nil: no Idempotency-Key) and returns the command that
// answers it: the new one (commandID, created true), or, when the user used
// the key before, the command made then. Requests racing on one key all get
// the one command: the unique constraint settles it. The caller compares
// BodyHash to refuse a key reused with another body.
func RecordCommand(ctx context.Context, pool *pgxpool.Pool, userID string, key *string, bodyHash []byte, commandID string) (APICommand, bool, error) {
	cmd := APICommand{CommandID: commandID, UserID: userID, BodyHash: bodyHash}
	tag, err := pool.Exec(ctx, `
		INSERT INTO api_commands (command_id, user_id, idempotency_key, body_hash) VALUES ($1, $2, $3, $4)
		ON CONFLICT ON CONSTRAINT api_commands_user_key DO NOTHING`, commandID, userID, key, bodyHash)
	if err != nil {
		return APICommand{}, false, translate(err)
	}
	if tag.RowsAffected() == 1 {
		return cmd, true, nil
	}
	err = pool.QueryRow(ctx, `SELECT command_id, body_hash FROM api_commands WHERE user_id = $1 AND idempotency_key = $2`,
		userID, key).Scan(&cmd.CommandID, &cmd.BodyHash)
	return cmd, false, translate(err)
}

// SameBody reports whether a recorded command was made with this body hash.
func (c APICommand) SameBody(hash []byte) bool { return bytes.Equal(c.BodyHash, hash) }

// CommandOf reports whether commandID is a command the API made for userID.
func CommandOf(ctx context.Context, pool *pgxpool.Pool, commandID, userID string) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_commands WHERE command_id = $1 AND user_id = $2)`,
		commandID, userID).Scan(&ok)
	return ok, translate(err)
}

// StoredOutcome is the outcome stored for commandID; nil when the command is
// not decided (yet).
func StoredOutcome(ctx context.Context, pool *pgxpool.Pool, commandID string) (*domain.Outcome, error) {
	var found *domain.Outcome
	err := StoredOutcomes(ctx, pool, time.Time{}, []string{commandID}, func(o domain.Outcome) error {
		found = &o
		return nil
	})
	return found, err
}

// VisibleSim returns the SIM with id when userID holds sims:read or
// sims:create on its company or one of its ancestors; nil otherwise, exactly
// as for a SIM that does not exist.
func VisibleSim(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID, userID string) (*domain.Sim, error) {
	rows, err := pool.Query(ctx, `
		WITH RECURSIVE sim AS (
			SELECT * FROM sims WHERE id = $1
		), chain(id) AS (
			SELECT company_id FROM sim
			UNION
			SELECT c.parent_id FROM companies c JOIN chain ON c.id = chain.id WHERE c.parent_id IS NOT NULL
		)
		SELECT `+simColumns+` FROM sim
		WHERE EXISTS (SELECT 1 FROM grants g WHERE g.user_id = $2 AND g.permission = ANY($3)
		              AND g.company_id IN (SELECT id FROM chain))`,
		id, userID, []string{domain.PermissionReadSIM, domain.PermissionCreateSIM})
	if err != nil {
		return nil, translate(err)
	}
	sims, err := pgx.CollectRows(rows, scanSim)
	if err != nil || len(sims) == 0 {
		return nil, translate(err)
	}
	return &sims[0], nil
}
