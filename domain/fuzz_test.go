package domain

import (
	"encoding/json"
	"testing"
	"time"
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
