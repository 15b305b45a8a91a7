package domain

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// benchBody is a typical command: every field, metadata with exact numbers.
var benchBody = []byte(`{"command_id":"c-0001","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944500102198304826",
	"msisdn":"4915112345678","status":"active","rate_plan":"Flex 1GB","sim_metadata":{"batch":12345678901234567890,"tags":["a","b"],"n":0.1}}}`)

// BenchmarkParseCommand: decode + validate, the hand-written single pass
// (ParseCommand) beside the same work done with encoding/json
// (parseWithEncodingJSON), so the codec's worth can be measured again.
func BenchmarkParseCommand(b *testing.B) {
	for _, c := range []struct {
		name  string
		parse func([]byte) Envelope
	}{{"hand", ParseCommand}, {"encoding_json", parseWithEncodingJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(benchBody)))
			b.ReportAllocs()
			for b.Loop() {
				if env := c.parse(benchBody); env.Reject != nil {
					b.Fatal(env.Reject)
				}
			}
		})
	}
}

// TestParseWithEncodingJSONAgrees keeps the benchmark's reference honest: on
// the benchmark's body it decodes what ParseCommand decodes.
func TestParseWithEncodingJSONAgrees(t *testing.T) {
	t.Parallel()
	got, want := parseWithEncodingJSON(benchBody), ParseCommand(benchBody)
	// The metadata as values: ParseCommand writes it as jsonb prints it
	// (keys sorted, ", " and ": "), encoding/json compacts it as sent.
	if !sameValue(t, got.Command.Sim.SimMetadata, want.Command.Sim.SimMetadata) {
		t.Fatalf("metadata: encoding/json %s, ParseCommand %s", got.Command.Sim.SimMetadata, want.Command.Sim.SimMetadata)
	}
	got.Command.Sim.SimMetadata, want.Command.Sim.SimMetadata = nil, nil
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("encoding/json reference:\n%s\nParseCommand:\n%s", g, w)
	}
}

// parseWithEncodingJSON is decode + validate written the plain way, with
// encoding/json, for a well-formed command (the benchmark's): a map of raw
// members per object, a decode per field, and the metadata decoded with
// UseNumber (exact numbers) to count its keys, then compacted.
func parseWithEncodingJSON(body []byte) Envelope {
	reject := &Error{Code: CodeInvalidArgument, Message: "invalid"}
	if len(body) > MaxBodyBytes || !utf8.Valid(body) {
		return Envelope{Reject: reject}
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return Envelope{Reject: reject}
	}
	var env Envelope
	if json.Unmarshal(top["command_id"], &env.CommandID) != nil || env.CommandID == "" ||
		utf8.RuneCountInString(env.CommandID) > MaxCommandIDLen {
		return Envelope{Reject: reject}
	}
	env.Command.ID = env.CommandID
	if json.Unmarshal(top["actor_id"], &env.Command.ActorID) != nil || env.Command.ActorID == "" {
		env.Reject = &Error{Code: CodeUnauthorized}
		return env
	}
	var sim map[string]json.RawMessage
	if json.Unmarshal(top["sim"], &sim) != nil {
		env.Reject = reject
		return env
	}
	in := &env.Command.Sim
	optional := func(raw json.RawMessage, max int) (*string, bool) {
		if raw == nil || string(raw) == "null" {
			return nil, true
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || max > 0 && utf8.RuneCountInString(s) > max {
			return nil, false
		}
		return &s, true
	}
	ok := json.Unmarshal(sim["device_id"], &in.DeviceID) == nil && in.DeviceID != "" &&
		json.Unmarshal(sim["iccid"], &in.ICCID) == nil && iccidReason(in.ICCID) == ""
	var fine bool
	if in.MNOIntegrationID, fine = optional(sim["mno_integration_id"], 0); !fine {
		ok = false
	}
	if in.MSISDN, fine = optional(sim["msisdn"], MaxMSISDNLen); !fine {
		ok = false
	}
	status, fine := optional(sim["status"], MaxStatusLen)
	in.Status = DefaultStatus
	if !fine {
		ok = false
	} else if status != nil {
		in.Status = *status
	}
	if in.CommunicationPlan, fine = optional(sim["communication_plan"], MaxPlanLen); !fine {
		ok = false
	}
	if in.RatePlan, fine = optional(sim["rate_plan"], MaxPlanLen); !fine {
		ok = false
	}
	dec := json.NewDecoder(bytes.NewReader(sim["sim_metadata"]))
	dec.UseNumber()
	var md map[string]any
	if dec.Decode(&md) != nil || len(md) > MaxMetadataKeys {
		ok = false
	}
	var compact bytes.Buffer // encoding/json keeps the member order this way
	if json.Compact(&compact, sim["sim_metadata"]) != nil {
		ok = false
	}
	in.SimMetadata = compact.Bytes()
	if !ok {
		env.Reject = reject
	}
	return env
}

// BenchmarkNewCreated: a sim.created event, written by hand in one buffer
// (NewCreated) beside json.Marshal of the same event and its data.
func BenchmarkNewCreated(b *testing.B) {
	mno, rate := "m-1", "Flex 1GB"
	at := time.Date(2026, 11, 25, 10, 46, 3, 847458000, time.UTC)
	sim := Sim{ID: "0193a3f0-6c1e-7b7e-9a55-3f1c2d3e4f50", CompanyID: "co-acme", DeviceID: "d-1", MNOIntegrationID: &mno,
		ICCID: "8944500102198304826", Status: "active", RatePlan: &rate,
		SimMetadata: json.RawMessage(`{"n":0.1,"tags":["a","b"],"batch":12345678901234567890}`),
		CreatedAt:   at, CreatedBy: "u-alice", UpdatedAt: at, UpdatedBy: "u-alice"}
	const eventID, commandID = "0193a3f0-6c1e-7b7e-9a55-3f1c2d3e4f51", "c-0001"
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewCreated(DefaultSource, eventID, commandID, sim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, err := json.Marshal(sim)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(CloudEvent{SpecVersion: SpecVersion, ID: eventID, Source: DefaultSource, Type: TypeCreated,
				Subject: sim.ID, Time: FormatTime(sim.CreatedAt), DataContentType: ContentTypeJSON, CommandID: commandID, Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
