package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"simworker/domain"
)

// FuzzRequestDecoding: checks c to f on any body, content type and key:
// never a panic; every refusal a 4xx with a code; an accepted body is a JSON
// object within the size bound and an accepted key is printable ASCII.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range []struct{ body, ct, key string }{
		{`{"device_id":"d-1","iccid":"8944500102198304826"}`, "application/json", "k-1"},
		{`[1]`, "application/json", ""}, {`{`, "application/merge-patch+json; charset=utf-8", "x"},
		{"{\"a\":\"\xff\"}", "text/plain", "\x7f"}, {`{"device_id":"d-1","iccid":`, "application/json", ""},
		{`{"device_id":"d-1","iccid":"8944500102198304826","sim_metadata":{"n0":1e131071,"n1":[1e99,-1e-99]}}`, "application/json", ""}, {``, "", ""}, {` {"a":{"b":[1,2,{"c":null}]}} `, "application/vnd.sim+json", "~"},
	} {
		f.Add([]byte(s.body), s.ct, s.key)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct, key string) {
		r, err := http.NewRequest(http.MethodPost, "/v1/sims", bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Header.Set("Content-Type", ct)
		if key != "" {
			r.Header["Idempotency-Key"] = []string{key}
		}
		got, e := readSimBody(r)
		if e != nil && e.StatusOf() == http.StatusBadRequest && len(e.Fields) == 1 && e.Fields[0].Field == "sim" &&
			(json.Valid(body) && utf8.Valid(body)) == strings.HasPrefix(e.Message, "the body is not valid JSON: ") {
			t.Fatalf("valid JSON %v, message %q", json.Valid(body) && utf8.Valid(body), e.Message)
		}
		if e == nil {
			if len(got) > MaxBodyBytes || !bytes.Equal(got, body) {
				t.Fatalf("accepted %d bytes, differing from the body", len(got))
			}
			// What the worker then decides holds the sim_metadata bounds.
			if env := domain.ParseCommand(commandBody("c-1", "u-1", got)); env.Reject == nil {
				if n, ok := domain.MetadataStoredLen(env.Command.Sim.SimMetadata); !ok || n > domain.MaxMetadataStoredBytes {
					t.Fatalf("metadata accepted, %d bytes as stored", n)
				}
			}
			k, e2 := idempotencyKey(r.Header)
			if e2 == nil && k != nil {
				for i := 0; i < len(*k); i++ {
					if (*k)[i] < 0x20 || (*k)[i] > 0x7e {
						t.Fatalf("accepted key %q", *k)
					}
				}
			}
			e = e2
		}
		if e != nil && (e.StatusOf() < 400 || e.StatusOf() > 499 || e.Code == "") {
			t.Fatalf("refusal %d %q for bad input", e.StatusOf(), e.Code)
		}
	})
}

// FuzzPathID: an id that is not valid UTF-8, holds a control character or
// is longer than a command id is never looked up.
func FuzzPathID(f *testing.F) {
	for _, s := range []string{"c-1", "\xff", "\x00", "\xc3\x28", "c\n1", "\u009b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !wellFormedID(id) {
			return
		}
		if !utf8.ValidString(id) || utf8.RuneCountInString(id) > domain.MaxCommandIDLen || id == "" {
			t.Fatalf("%q taken for an id", id)
		}
		for _, r := range id {
			if unicode.IsControl(r) {
				t.Fatalf("%q taken for an id: a control character", id)
			}
		}
	})
}
