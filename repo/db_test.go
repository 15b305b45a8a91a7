package repo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"simworker/domain"
)

func TestTranslateClassifiesOutages(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "m"} }
	for _, tt := range []struct {
		name   string
		err    error
		outage bool
	}{
		{"connection exception", pg("08006"), true},
		{"too many connections", pg("53300"), true},
		{"admin shutdown", pg("57P01"), true},
		{"undefined column (schema drift)", pg("42703"), true},
		{"insufficient privilege", pg("42501"), true},
		{"serialization failure", pg("40001"), true},
		{"deadlock", pg("40P01"), true},
		{"statement timeout", pg("57014"), false},
		{"raised by a trigger", pg("P0001"), false},
		{"invalid JSON", pg("22P02"), false},
		{"invalid byte sequence for the encoding", pg("22021"), false},
		{"a value too long, a program limit", pg("54000"), false},
		{"another unique constraint", pg("23505"), false},
		{"disk full", pg("53100"), true},
		{"read-only transaction (a failover)", pg("25006"), true},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"plain error", errors.New("boom"), false},
	} {
		got := errors.Is(translate(tt.err), domain.ErrUnavailable)
		if got != tt.outage {
			t.Errorf("%s: outage = %v, want %v", tt.name, got, tt.outage)
		}
	}
}
