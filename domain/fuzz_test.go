package domain

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseCommand: decode + validate never panics and always yields a valid
// outcome: either an accepted command with every rule holding, or a rejection
// with a contract code whose event is well-formed JSON.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"command_id":"c-1","actor_id":"u","sim":{"device_id":"d","iccid":"8944500102198304826"}}`,
		`{"command_id":"c-1","actor_id":"u","sim":{"device_id":"d","iccid":"8944500102198304826","sim_metadata":{"n":12345678901234567890,"f":0.1,"a":[1,{"b":null}]}}}`,
		`{"command_id":"c-1","actor_id":"u","sim":{"iccid":"١٢٣","msisdn":5,"status":null}}`,
		`not json`, `[]`, `{}`, `null`, `{"command_id":"","sim":{}}`, "{\"command_id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env := ParseCommand(body)
		if env.Reject == nil {
			if env.CommandID == "" {
				t.Fatal("accepted without a command id")
			}
			in := env.Command.Sim
			if in.DeviceID == "" || iccidReason(in.ICCID) != "" {
				t.Fatalf("accepted an invalid sim: %+v", in)
			}
			if !json.Valid(in.SimMetadata) || !isJSONObject(in.SimMetadata) {
				t.Fatalf("metadata is not a JSON object: %q", in.SimMetadata)
			}
			return
		}
		switch env.Reject.Code {
		case CodeInvalidArgument, CodeUnauthorized:
		default:
			t.Fatalf("code %q from parsing", env.Reject.Code)
		}
		o := NewRejected("simworker", "id", env.CommandID, time.Unix(0, 0), env.Reject)
		if !json.Valid(o.Event) {
			t.Fatalf("event is not JSON: %q", o.Event)
		}
	})
}

// FuzzScan checks the hand-written scanners against encoding/json on every
// valid JSON object: the same members (last one winning), the same compact
// form.
func FuzzScan(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"k\"ey":"v\\u0000","n":[1,{"x":-0.5e10}],"t":true,"z":null}`,
		`{ "sp ace" : { "in" : [ ] } , "é":"\u00e9" }`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) || !utf8.Valid(raw) { // ParseCommand rejects invalid UTF-8 first
			return
		}
		var want map[string]json.RawMessage
		isObject := json.Unmarshal(raw, &want) == nil && want != nil
		split, ok := splitObject(raw)
		got := map[string]json.RawMessage{}
		for k := range split.keys {
			got[string(split.keys[k])] = split.vals[k]
		}
		if ok != isObject {
			t.Fatalf("splitObject says object=%v, encoding/json %v: %q", ok, isObject, raw)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, encoding/json %d: %q", len(got), len(want), raw)
		}
		for k, v := range want {
			if string(compact(t, got[k])) != string(compact(t, v)) {
				t.Fatalf("member %q = %q, encoding/json %q", k, got[k], v)
			}
		}
		md, reason := scanMetadata(raw)
		if reason == "" && !sameValue(t, md, raw) {
			t.Fatalf("written as %q, a value other than %q", md, raw)
		}
	})
}

// sameValue reports whether two JSON texts are the same value: numbers
// compared as exact decimals (1e3 and 1000 are one number).
func sameValue(t *testing.T, a, b []byte) bool {
	t.Helper()
	decode := func(raw []byte) any {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v: %q", err, raw)
		}
		return v
	}
	var same func(x, y any) bool
	same = func(x, y any) bool {
		switch x := x.(type) {
		case map[string]any:
			y, ok := y.(map[string]any)
			if !ok || len(x) != len(y) {
				return false
			}
			for k, v := range x {
				if w, ok := y[k]; !ok || !same(v, w) {
					return false
				}
			}
			return true
		case []any:
			y, ok := y.([]any)
			if !ok || len(x) != len(y) {
				return false
			}
			for i := range x {
				if !same(x[i], y[i]) {
					return false
				}
			}
			return true
		case json.Number:
			y, ok := y.(json.Number)
			if !ok {
				return false
			}
			rx, okx := exactNumber(string(x))
			ry, oky := exactNumber(string(y))
			return okx && oky && rx.Cmp(ry) == 0
		default:
			return x == y
		}
	}
	return same(decode(a), decode(b))
}

func compact(t *testing.T, raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %q: %v", raw, err)
	}
	return b.Bytes()
}

// exactNumber is a JSON number's exact value; a zero is zero whatever its
// exponent (big.Rat would compute 10^exponent).
func exactNumber(n string) (*big.Rat, bool) {
	mant := strings.TrimLeft(n, "-")
	if i := strings.IndexAny(mant, "eE"); i >= 0 {
		mant = mant[:i]
	}
	if strings.Trim(mant, "0.") == "" {
		return new(big.Rat), true
	}
	return new(big.Rat).SetString(n)
}
