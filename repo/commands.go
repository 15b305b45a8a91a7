package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"simworker/app"
	"simworker/domain"
)

// RecordCommands records requests in one statement (app.CommandStore). A
// request whose key holds an earlier command gets that command, read after
// the insert's statement, so that a racing transaction's command, which the
// insert waited for, is seen.
func (s *Storage) RecordCommands(ctx context.Context, reqs []app.CommandRequest) ([]app.Recorded, error) {
	out, err := recordCommands(ctx, s.pool, reqs)
	return out, translate(err)
}

func recordCommands(ctx context.Context, db executor, reqs []app.CommandRequest) ([]app.Recorded, error) {
	ids, users, keys, hashes := make([]string, len(reqs)), make([]string, len(reqs)), make([]*string, len(reqs)), make([][]byte, len(reqs))
	for i, q := range reqs {
		ids[i], users[i], keys[i], hashes[i] = q.CommandID, q.UserID, q.Key, q.BodyHash
	}
	rows, err := db.Query(ctx, `
		INSERT INTO api_commands (command_id, user_id, idempotency_key, body_hash)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
		ON CONFLICT ON CONSTRAINT api_commands_user_key DO NOTHING
		RETURNING command_id`, ids, users, keys, hashes)
	if err != nil {
		return nil, err
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	created := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		created[id] = true
	}
	out := make([]app.Recorded, len(reqs))
	var taken []int // requests whose key holds an earlier command
	for i, q := range reqs {
		out[i] = app.Recorded{Command: app.APICommand{CommandID: q.CommandID, UserID: q.UserID, BodyHash: q.BodyHash}, Created: created[q.CommandID]}
		if !out[i].Created {
			taken = append(taken, i)
		}
	}
	if len(taken) == 0 {
		return out, nil
	}
	return out, earlierCommands(ctx, db, reqs, taken, out)
}

// earlierCommands fills out[i], for each i in taken, with the command the
// user made under the key before.
func earlierCommands(ctx context.Context, db executor, reqs []app.CommandRequest, taken []int, out []app.Recorded) error {
	users, keys := make([]string, 0, len(taken)), make([]string, 0, len(taken))
	for _, i := range taken {
		if reqs[i].Key == nil {
			return fmt.Errorf("command %s was not recorded", reqs[i].CommandID)
		}
		users, keys = append(users, reqs[i].UserID), append(keys, *reqs[i].Key)
	}
	rows, err := db.Query(ctx, `
		SELECT user_id, idempotency_key, command_id, body_hash FROM api_commands
		WHERE (user_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, users, keys)
	if err != nil {
		return err
	}
	found := map[[2]string]app.APICommand{}
	var user, key string
	var c app.APICommand
	_, err = pgx.ForEachRow(rows, []any{&user, &key, &c.CommandID, &c.BodyHash}, func() error {
		c.UserID = user
		found[[2]string{user, key}] = c
		return nil
	})
	if err != nil {
		return err
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

// CommandOf reports whether commandID is a command the API made for userID
// (app.CommandStore).
func (s *Storage) CommandOf(ctx context.Context, commandID, userID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_commands WHERE command_id = $1 AND user_id = $2)`,
		commandID, userID).Scan(&ok)
	return ok, translate(err)
}

// StoredOutcome is the outcome stored for commandID; nil when the command is
// not decided (yet) (app.BatchStore).
func (s *Storage) StoredOutcome(ctx context.Context, commandID string) (*domain.Outcome, error) {
	var found *domain.Outcome
	err := s.StoredOutcomes(ctx, time.Time{}, []string{commandID}, func(o domain.Outcome) error {
		found = &o
		return nil
	})
	return found, err
}
