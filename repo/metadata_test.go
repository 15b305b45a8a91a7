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
// as it prints it, no number in it longer than 100 digits; the text the
// validation writes (which the event carries) is what PostgreSQL prints,
// byte for byte; and what it refuses for its size or a number's digits is
// truly that large as stored.
func FuzzMetadataAsStored(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1e3,"b":1e-3,"c":-0,"d":-0.00,"e":1.50,"f":1.0e2,"g":1.50e1,"h":10.5E-1,"i":0e999999999}`,
		`{"n":1e99}`, `{"n":1e100}`, `{"n":1e-99}`, `{"n":1e-100}`, `{"n":-1e99}`, `{"n":0.001e-2}`,
		`{"a":"\u0001\b\f\n\r\t\"\\\/x","b":"\u00e9\ud83d\ude00é","c":"<>&\u2028"}`,
		`{"a":1,"a":{"b":[1,2,{"a":"x","a":"yy"}]},"b":[],"c":{},"d":[[],{}],"e":true,"f":false,"g":null}`,
		`{ "sp ace" : { "in" : [ 1 , 2 ] } , "k" : "v" }`,
		`{"bb":1,"a":2,"ab":3,"é":4,"z":5,"aa":{"y":1,"x":2},"":0,"A":6,"\u00e9":7,"e\u0301":8}`,
		`{"k":1,"k":{"k":[1,{"k":2,"k":3}]},"j":2,"l":3,"m":4,"n":5,"o":6,"p":7,"q":8,"r":9,"s":10,"k":"last"}`,
		`{"n":[0.5e1,-0.0,0e-5,1.000,100e-2,123456789.123456789e-5,-1E+2,0.000001e6]}`,
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
			// The event carries the text the validation writes: it must be
			// what PostgreSQL prints of the stored value, byte for byte.
			if got := string(env.Command.Sim.SimMetadata); got != stored {
				t.Fatalf("written as\n%s\nPostgreSQL prints\n%s\nfor %s", got, stored, md)
			}
			return
		}
		switch msg := env.Reject.Message; {
		case strings.Contains(msg, "bytes as stored") && len(stored) <= domain.MaxMetadataStoredBytes:
			t.Fatalf("refused for its size, %d bytes stored: %s", len(stored), md)
		case strings.Contains(msg, "digits written out") && digits <= domain.MaxMetadataNumberDigits && !repeatsAKey(md):
			// (A number under a repeated key counts though jsonb keeps only the
			// last value: the rule is on what is sent.)
			t.Fatalf("refused for a number's digits, at most %d: %s", digits, md)
		}
	})
}

// repeatsAKey reports whether some object of a valid JSON text has a key
// twice.
func repeatsAKey(raw []byte) bool {
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	type level struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*level
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		top := (*level)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.object && top.key
		if top != nil && top.object {
			top.key = !top.key
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, &level{object: true, keys: map[string]bool{}, key: true})
			case '[':
				stack = append(stack, &level{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
		case string:
			if isKey {
				if top.keys[tok] {
					return true
				}
				top.keys[tok] = true
			}
		}
	}
}
