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

// splitToken returns the id and secret of a well-formed token: its id in
// the one spelling CreateToken gives (a lower-case UUID with dashes) and a
// secret of 43 base64url characters. Anything else is refused before any
// query, so one token cannot be sent in several spellings, each a query.
func splitToken(token string) (uuid.UUID, string, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return uuid.UUID{}, "", false
	}
	idText, secret, ok := strings.Cut(rest, ".")
	if !ok || len(idText) != 36 || len(secret) != secretLen {
		return uuid.UUID{}, "", false
	}
	id, err := uuid.Parse(idText)
	if err != nil || id.String() != idText {
		return uuid.UUID{}, "", false
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return uuid.UUID{}, "", false
		}
	}
	return id, secret, true
}

// secretLen is the length of a token's secret: 32 bytes, base64url.
const secretLen = 43

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

// CommandRequest is a request for a command: userID asks for one with the
// body of BodyHash, under Key (nil: no Idempotency-Key); CommandID is the id
// of the command made if the key is new.
type CommandRequest struct {
	UserID    string
	Key       *string
	BodyHash  []byte
	CommandID string
}

// RecordCommand records one request (see RecordCommands).
func RecordCommand(ctx context.Context, pool *pgxpool.Pool, userID string, key *string, bodyHash []byte, commandID string) (APICommand, bool, error) {
	res, err := RecordCommands(ctx, pool, []CommandRequest{{UserID: userID, Key: key, BodyHash: bodyHash, CommandID: commandID}})
	if err != nil {
		return APICommand{}, false, err
	}
	return res[0].Command, res[0].Created, nil
}

// Recorded is what a CommandRequest got: the new command (Created), or the
// one the user made under the key before.
type Recorded struct {
	Command APICommand
	Created bool
}

// RecordCommands records requests in one statement and returns, for each,
// the command that answers it: the new one (its CommandID, Created), or,
// when the user used the key before, the command made then. Requests racing
// on one key, in this batch or in another transaction, all get the one
// command: the unique constraint settles it. The caller compares BodyHash to
// refuse a key reused with another body.
func RecordCommands(ctx context.Context, pool *pgxpool.Pool, reqs []CommandRequest) ([]Recorded, error) {
	ids, users, keys, hashes := make([]string, len(reqs)), make([]string, len(reqs)), make([]*string, len(reqs)), make([][]byte, len(reqs))
	for i, q := range reqs {
		ids[i], users[i], keys[i], hashes[i] = q.CommandID, q.UserID, q.Key, q.BodyHash
	}
	rows, err := pool.Query(ctx, `
		INSERT INTO api_commands (command_id, user_id, idempotency_key, body_hash)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
		ON CONFLICT ON CONSTRAINT api_commands_user_key DO NOTHING
		RETURNING command_id`, ids, users, keys, hashes)
	if err != nil {
		return nil, translate(err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err)
	}
	created := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		created[id] = true
	}
	out := make([]Recorded, len(reqs))
	var taken []int // requests whose key holds an earlier command
	for i, q := range reqs {
		out[i] = Recorded{Command: APICommand{CommandID: q.CommandID, UserID: q.UserID, BodyHash: q.BodyHash}, Created: created[q.CommandID]}
		if !out[i].Created {
			taken = append(taken, i)
		}
	}
	if len(taken) == 0 {
		return out, nil
	}
	return out, earlierCommands(ctx, pool, reqs, taken, out)
}

// earlierCommands fills out[i], for each i in taken, with the command the
// user made under the key before. It runs after the insert's statement, so
// it sees a racing transaction's command, which the insert waited for.
func earlierCommands(ctx context.Context, pool *pgxpool.Pool, reqs []CommandRequest, taken []int, out []Recorded) error {
	users, keys := make([]string, 0, len(taken)), make([]string, 0, len(taken))
	for _, i := range taken {
		if reqs[i].Key == nil {
			return fmt.Errorf("command %s was not recorded", reqs[i].CommandID)
		}
		users, keys = append(users, reqs[i].UserID), append(keys, *reqs[i].Key)
	}
	rows, err := pool.Query(ctx, `
		SELECT user_id, idempotency_key, command_id, body_hash FROM api_commands
		WHERE (user_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, users, keys)
	if err != nil {
		return translate(err)
	}
	found := map[[2]string]APICommand{}
	var user, key string
	var c APICommand
	_, err = pgx.ForEachRow(rows, []any{&user, &key, &c.CommandID, &c.BodyHash}, func() error {
		c.UserID = user
		found[[2]string{user, key}] = c
		return nil
	})
	if err != nil {
		return translate(err)
	}
	for _, i := range taken {
		c, ok := found[[2]string{reqs[i].UserID, *reqs[i].Key}]
		if !ok {
			return fmt.Errorf("the command of key %q was not found", *reqs[i].Key)
		}
		out[i].Command = c
	}
	return nil
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
