package api

import (
	"bytes"
	"net/http"
	"testing"
)

// FuzzRequestDecoding: checks c to f on any body, content type and key:
// never a panic; every refusal a 4xx with a code; an accepted body is a JSON
// object within the size bound and an accepted key is printable ASCII.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range []struct{ body, ct, key string }{
		{`{"device_id":"d-1","iccid":"8944500102198304826"}`, "application/json", "k-1"},
		{`[1]`, "application/json", ""}, {`{`, "application/merge-patch+json; charset=utf-8", "x"},
		{"{\"a\":\"\xff\"}", "text/plain", "\x7f"}, {``, "", ""}, {` {"a":{"b":[1,2,{"c":null}]}} `, "application/vnd.sim+json", "~"},
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
		if e == nil {
			if len(got) > MaxBodyBytes || !bytes.Equal(got, body) {
				t.Fatalf("accepted %d bytes, differing from the body", len(got))
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
		if e != nil && (e.Status < 400 || e.Status > 499 || e.Code == "") {
			t.Fatalf("refusal %d %q for bad input", e.Status, e.Code)
		}
	})
}
