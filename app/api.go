package app

import (
	"bytes"
	"context"

	"simworker/domain"
)

// APICommand is a command the API made for a user.
type APICommand struct {
	CommandID string
	UserID    string
	BodyHash  []byte
}

// SameBody reports whether the command was made for a body of this hash.
func (c APICommand) SameBody(hash []byte) bool { return bytes.Equal(c.BodyHash, hash) }

// CommandRequest is a request for a command: UserID asks for one with the
// body of BodyHash, under Key (nil: no Idempotency-Key); CommandID is the id
// of the command made if the key is new.
type CommandRequest struct {
	UserID    string
	Key       *string
	BodyHash  []byte
	CommandID string
}

// Recorded is what a CommandRequest got: the new command (Created), or the
// one the user made under the key before.
type Recorded struct {
	Command APICommand
	Created bool
}

// RecordCommands records requests for commands, all in one statement, and
// returns, for each, the command that answers it: the new one (Created), or,
// when the user used the key before, the command made then. Requests racing
// on one key, in this batch or elsewhere, all get the one command. The
// caller compares BodyHash to refuse a key reused with another body.
func (a *App) RecordCommands(ctx context.Context, reqs []CommandRequest) ([]Recorded, error) {
	return a.store.RecordCommands(ctx, reqs)
}

// CommandOf reports whether commandID is a command the API made for userID:
// a user sees its own commands only.
func (a *App) CommandOf(ctx context.Context, commandID, userID string) (bool, error) {
	return a.store.CommandOf(ctx, commandID, userID)
}

// StoredOutcome is the outcome stored for commandID; nil when the command
// is not decided (yet).
func (a *App) StoredOutcome(ctx context.Context, commandID string) (*domain.Outcome, error) {
	return a.store.StoredOutcome(ctx, commandID)
}

// readers are the permissions that let a user see a company's SIMs: a SIM
// is visible to whoever may read or create SIMs for its company, or for one
// of its ancestors (the tree rule is storage's: company_lineage).
var readers = []string{domain.PermissionReadSIM, domain.PermissionCreateSIM}

// VisibleSim returns the SIM id when userID may see it; nil otherwise,
// exactly as for a SIM that does not exist, or an id that is not a SIM's (a
// UUID in another spelling than the API gives included).
func (a *App) VisibleSim(ctx context.Context, id, userID string) (*domain.Sim, error) {
	if !canonicalUUID(id) {
		return nil, nil
	}
	return a.store.SimFor(ctx, id, userID, readers)
}
