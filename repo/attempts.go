package repo

import "context"

// BeginAttempt marks an attempt at deciding commandID in progress, durably
// (its own transaction, committed before the attempt), and returns how
// many earlier attempts crashed: an attempt still marked in progress when
// the next begins never ended, so the process died during it.
func (s *Store) BeginAttempt(ctx context.Context, commandID string) (crashes int, err error) {
	err = s.pool.QueryRow(ctx, `
		INSERT INTO command_attempts AS a (command_id) VALUES ($1)
		ON CONFLICT (command_id) DO UPDATE
		SET crashes = a.crashes + a.in_progress::int, in_progress = true, updated_at = now()
		RETURNING crashes`, commandID).Scan(&crashes)
	return crashes, translate(err)
}

// EndAttempt records that the attempt at commandID ended without a crash.
// Decided (its outcome stored, the 500 of a dead letter included), its row
// goes; handed back (an outage, a shutdown), the crashes counted so far stay.
func (s *Store) EndAttempt(ctx context.Context, commandID string, decided bool) error {
	sql := `UPDATE command_attempts SET in_progress = false, updated_at = now() WHERE command_id = $1`
	if decided {
		sql = `DELETE FROM command_attempts WHERE command_id = $1`
	}
	_, err := s.pool.Exec(ctx, sql, commandID)
	return translate(err)
}
