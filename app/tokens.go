package app

import (
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
)

// tokenPrefix marks the API's tokens, so a leaked one is recognisable.
const tokenPrefix = "sim_"

// secretLen is the length of a token's secret: 32 bytes, base64url.
const secretLen = 43

// CreateToken makes a token for userID: "sim_<id>.<secret>", the secret 256
// random bits. Only the secret's SHA-256 is stored; the token itself is
// returned once and cannot be read back. expires zero means no expiry.
// ErrUnknownUser (wrapped, naming the user): no such user.
func (a *App) CreateToken(ctx context.Context, userID, name string, expires time.Time) (string, Token, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", Token{}, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	enc := base64.RawURLEncoding.EncodeToString(secret)
	hash := sha256.Sum256([]byte(enc))
	t := Token{ID: id, UserID: userID, Name: name}
	if !expires.IsZero() {
		t.ExpiresAt = &expires
	}
	t, err := a.store.InsertToken(ctx, t, hash[:])
	if errors.Is(err, ErrUnknownUser) {
		return "", Token{}, fmt.Errorf("%w %q", err, userID)
	}
	if err != nil {
		return "", Token{}, err
	}
	return tokenPrefix + id + "." + enc, t, nil
}

// splitToken returns the id and secret of a well-formed token: its id in
// the one spelling CreateToken gives (a lower-case UUID with dashes) and a
// secret of 43 base64url characters. Anything else is refused before any
// query, so one token cannot be sent in several spellings, each a query.
func splitToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || !canonicalUUID(id) || len(secret) != secretLen {
		return "", "", false
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", "", false
		}
	}
	return id, secret, true
}

// canonicalUUID reports whether s is a UUID in the one spelling this
// system gives: lower case, with dashes.
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	id, err := uuid.Parse(s)
	return err == nil && id.String() == s
}

// Authenticate returns the user and token id of a valid token: well formed,
// known, its secret's hash equal (compared in constant time), not expired,
// not revoked. ok is false otherwise; err only for a storage failure.
func (a *App) Authenticate(ctx context.Context, token string) (userID, tokenID string, ok bool, err error) {
	id, secret, wellFormed := splitToken(token)
	if !wellFormed {
		return "", "", false, nil
	}
	userID, stored, found, err := a.store.LiveToken(ctx, id)
	if err != nil || !found {
		return "", "", false, err
	}
	hash := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(hash[:], stored) != 1 {
		return "", "", false, nil
	}
	return userID, id, true, nil
}

// Tokens lists the tokens, of one user when userID is not empty, oldest
// first.
func (a *App) Tokens(ctx context.Context, userID string) ([]Token, error) {
	return a.store.Tokens(ctx, userID)
}

// RevokeToken revokes a token given as itself or as its id (as Tokens
// shows it). false when there is no such token; revoking twice keeps the
// first time.
func (a *App) RevokeToken(ctx context.Context, tokenOrID string) (bool, error) {
	id, ok := "", false
	if u, err := uuid.Parse(tokenOrID); err == nil {
		id, ok = u.String(), true
	} else {
		id, _, ok = splitToken(tokenOrID)
	}
	if !ok {
		return false, nil
	}
	return a.store.RevokeToken(ctx, id)
}
