package repo

import "context"

// BeginAttempt marks attempt (an id of the caller's, the same on each retry
// of this call) at deciding commandID in progress, durably (its own
// transaction, committed before the attempt), and returns how many earlier
// attempts crashed: another attempt still marked in progress when this one
// begins never ended, so the process died during it.
func (s *Storage) BeginAttempt(ctx context.Context, commandID, attempt string) (crashes int, err error) {
	err = s.pool.QueryRow(ctx, `
		INSERT INTO command_attempts AS a (command_id, attempt) VALUES ($1, $2)
		ON CONFLICT (command_id) DO UPDATE
		SET crashes = a.crashes + (a.in_progress AND a.attempt <> $2)::int, in_progress = true, attempt = $2, updated_at = now()
		RETURNING crashes`, commandID, attempt).Scan(&crashes)
	return crashes, translate(err)
}

// EndAttempt records that attempt at commandID ended without a crash.
// Decided (its outcome stored, the 500 of a dead letter included), the row
// goes; handed back (an outage, a shutdown), its mark goes and the crashes
// counted so far stay. Only this attempt's own mark is ended: one it never
// managed to make leaves an earlier, crashed attempt's mark alone.
func (s *Storage) EndAttempt(ctx context.Context, commandID, attempt string, decided bool) error {
	var err error
	if decided {
		_, err = s.pool.Exec(ctx, `DELETE FROM command_attempts WHERE command_id = $1`, commandID)
	} else {
		_, err = s.pool.Exec(ctx, `UPDATE command_attempts SET in_progress = false, updated_at = now()
			WHERE command_id = $1 AND attempt = $2`, commandID, attempt)
	}
	return translate(err)
}
