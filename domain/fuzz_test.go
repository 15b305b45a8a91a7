package domain

import (
	"bytes"
	"encoding/json"
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
		got, ok := splitObject(raw)
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
		if reason == "" && string(md) != string(compact(t, raw)) {
			t.Fatalf("compacted %q, encoding/json %q", md, compact(t, raw))
		}
	})
}

func compact(t *testing.T, raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %q: %v", raw, err)
	}
	return b.Bytes()
}
