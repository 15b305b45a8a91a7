package repo_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"simworker/domain"
	"simworker/repo/repotest"
)

// FuzzMetadataAsStored holds the sim_metadata rules to what PostgreSQL
// stores: whatever the validation accepts, jsonb takes, at most 65,536 bytes
// as it prints it, no number in it longer than 100 digits; the length the
// validation computes is PostgreSQL's, byte for byte; and what it refuses
// for its size or a number's digits is truly that large as stored.
func FuzzMetadataAsStored(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1e3,"b":1e-3,"c":-0,"d":-0.00,"e":1.50,"f":1.0e2,"g":1.50e1,"h":10.5E-1,"i":0e999999999}`,
		`{"n":1e99}`, `{"n":1e100}`, `{"n":1e-99}`, `{"n":1e-100}`, `{"n":-1e99}`, `{"n":0.001e-2}`,
		`{"a":"\u0001\b\f\n\r\t\"\\\/x","b":"\u00e9\ud83d\ude00é","c":"<>&\u2028"}`,
		`{"a":1,"a":{"b":[1,2,{"a":"x","a":"yy"}]},"b":[],"c":{},"d":[[],{}],"e":true,"f":false,"g":null}`,
		`{ "sp ace" : { "in" : [ 1 , 2 ] } , "k" : "v" }`,
		`{"n0":1e131071,"n1":1e131071,"n2":1e131071,"n3":1e131071,"n4":1e131071,"n5":1e131071,"n6":1e131071,"n7":1e131071,"n8":1e131071}`,
		`{"a":[` + strings.TrimSuffix(strings.Repeat("1e99,", 700), ",") + `]}`,
		`{"a":[` + strings.TrimSuffix(strings.Repeat("-1e-98,", 640), ",") + `],"s":"` + strings.Repeat("\\u0007", 50) + `"}`,
	} {
		f.Add([]byte(s))
	}
	pool, _ := repotest.NewDB(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, md []byte) {
		if !json.Valid(md) || len(md) == 0 || md[0] != '{' {
			return
		}
		var cmd strings.Builder
		cmd.WriteString(`{"command_id":"c","actor_id":"a","sim":{"device_id":"d","iccid":"8944500102198304826","sim_metadata":`)
		cmd.Write(md)
		cmd.WriteString(`}}`)
		env := domain.ParseCommand([]byte(cmd.String()))
		if env.Reject != nil && (len(env.Reject.Fields) == 0 || env.Reject.Fields[0].Field != "sim_metadata") {
			return // the body as a whole (its size, its UTF-8)
		}
		var stored string
		var digits int
		err := pool.QueryRow(ctx, `
			SELECT $1::jsonb::text, (SELECT coalesce(max(length(regexp_replace(v::text, '[^0-9]', '', 'g'))), 0)
			FROM jsonb_path_query($1::jsonb, 'strict $.**') v WHERE jsonb_typeof(v) = 'number')`, string(md)).Scan(&stored, &digits)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code[:2] == "22" { // PostgreSQL cannot store it
			if env.Reject == nil {
				t.Fatalf("accepted what PostgreSQL refuses (%s): %s", pgErr.Message, md)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := domain.MetadataStoredLen(md); ok && n != len(stored) {
			t.Fatalf("stored length %d, PostgreSQL's %d:\n%s\n%s", n, len(stored), md, stored)
		}
		if env.Reject == nil {
			if len(stored) > domain.MaxMetadataStoredBytes || digits > domain.MaxMetadataNumberDigits {
				t.Fatalf("accepted %d bytes stored, a number of %d digits: %s", len(stored), digits, md)
			}
			return
		}
		switch msg := env.Reject.Message; {
		case strings.Contains(msg, "bytes as stored") && len(stored) <= domain.MaxMetadataStoredBytes:
			t.Fatalf("refused for its size, %d bytes stored: %s", len(stored), md)
		case strings.Contains(msg, "digits written out") && digits <= domain.MaxMetadataNumberDigits:
			t.Fatalf("refused for a number's digits, at most %d: %s", digits, md)
		}
	})
}
