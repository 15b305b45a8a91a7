package app

import (
	"context"
	"errors"
	"time"

	"simworker/domain"
)

// Storage is everything the application keeps: repo.Storage implements it
// on PostgreSQL. Every method translates its driver's failures: an error
// wrapping domain.ErrUnavailable is an outage to retry, any other one is
// unexpected, unless the method names it.
type Storage interface {
	BatchStore
	AttemptStore
	TokenStore
	CommandStore
	SimStore
}

// BatchStore keeps the decisions: the SIMs and the outcome of each command.
type BatchStore interface {
	// BeginBatch begins a batch's transaction and reads, in the same round
	// trip, the outcomes stored for ids and the facts of checks 4 to 6 for
	// asks (in their order). A command decided by a transaction that has
	// not committed yet is not among them: Commit finds it. The transaction
	// is the caller's to end, with Commit or Rollback.
	BeginBatch(ctx context.Context, ids []string, asks []*domain.Command) (BatchTx, []domain.Outcome, []domain.Facts, error)
	// ReplaceOutcome replaces the stored outcome old (found by its command
	// and event ids) by replacement, and deletes the SIM old created, in
	// one transaction; it returns the outcome stored now: replacement, or,
	// when old is no longer the stored outcome, the one that is.
	ReplaceOutcome(ctx context.Context, old, replacement domain.Outcome) (domain.Outcome, error)
	// StoredOutcome is the outcome stored for commandID, Replayed set; nil
	// when the command is not decided (yet).
	StoredOutcome(ctx context.Context, commandID string) (*domain.Outcome, error)
}

// BatchTx is a batch's open transaction.
type BatchTx interface {
	// InsertSimsSkippingTaken inserts sims, leaving out those whose ICCID
	// is taken (by a stored SIM, or by a transaction still running, which
	// it waits for), and returns those it inserted, in order.
	InsertSimsSkippingTaken(ctx context.Context, sims []domain.Sim) ([]domain.Sim, error)
	// Commit writes sims and outs and commits. ErrICCIDTaken: a SIM's ICCID
	// is taken; ErrDecidedConcurrently: another transaction stored an
	// outcome for one of outs' commands meanwhile. Either way nothing is
	// stored and the transaction is over.
	Commit(ctx context.Context, sims []domain.Sim, outs []domain.Outcome) error
	// Rollback ends the transaction if it is still open and releases its
	// connection; after Commit it only releases.
	Rollback(ctx context.Context)
}

// Errors a BatchTx's Commit names.
var (
	// ErrICCIDTaken: a SIM's ICCID is taken; the batch is decided again,
	// its SIMs inserted with InsertSimsSkippingTaken.
	ErrICCIDTaken = errors.New("an ICCID of the batch is taken")
	// ErrDecidedConcurrently: another worker decided a command of the
	// batch while this one did; the batch is decided again and then finds
	// that outcome stored.
	ErrDecidedConcurrently = errors.New("another worker decided a command of the batch concurrently")
)

// AttemptStore keeps the attempts at deciding suspect commands, across
// crashes (consumer.CrashCounter).
type AttemptStore interface {
	// BeginAttempt marks attempt at commandID in progress, durably, and
	// returns how many earlier attempts crashed (still marked when the next
	// began).
	BeginAttempt(ctx context.Context, commandID, attempt string) (crashes int, err error)
	// EndAttempt ends attempt: decided, the command's marks go; handed
	// back, only this attempt's mark goes.
	EndAttempt(ctx context.Context, commandID, attempt string, decided bool) error
}

// TokenStore keeps API tokens: never a secret, only its SHA-256.
type TokenStore interface {
	// InsertToken stores a new token and returns it as stored (CreatedAt
	// set). ErrUnknownUser: no such user.
	InsertToken(ctx context.Context, t Token, secretHash []byte) (Token, error)
	// LiveToken returns the user and the secret's hash of the token id,
	// when it exists and is neither expired nor revoked.
	LiveToken(ctx context.Context, id string) (userID string, secretHash []byte, ok bool, err error)
	// Tokens lists the tokens, of userID when it is not empty, oldest
	// first.
	Tokens(ctx context.Context, userID string) ([]Token, error)
	// RevokeToken revokes the token id (a second time keeps the first
	// time); false when there is no such token.
	RevokeToken(ctx context.Context, id string) (bool, error)
}

// ErrUnknownUser: a token was asked for a user the reference data does not
// hold.
var ErrUnknownUser = errors.New("unknown user")

// Token is an API token as `simctl tokens list` shows it: never its secret.
type Token struct {
	ID        string
	UserID    string
	Name      string
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

// CommandStore keeps the commands the API made.
type CommandStore interface {
	// RecordCommands records requests in one statement and returns, for
	// each, the command that answers it: its own (Created), or the one the
	// user made under its key before, in this batch or another transaction
	// (the unique constraint settles races).
	RecordCommands(ctx context.Context, reqs []CommandRequest) ([]Recorded, error)
	// CommandOf reports whether commandID is a command the API made for
	// userID.
	CommandOf(ctx context.Context, commandID, userID string) (bool, error)
}

// SimStore reads SIMs.
type SimStore interface {
	// SimFor returns the SIM id when userID holds one of permissions on its
	// company or one of its ancestors; nil otherwise, exactly as for a SIM
	// that does not exist. id is a canonical UUID.
	SimFor(ctx context.Context, id, userID string, permissions []string) (*domain.Sim, error)
}
