package domain

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

const validICCID = "8944500102198304826" // 19 digits

// body builds a command body with sim fields merged over a valid default.
func body(t *testing.T, sim map[string]any) string {
	t.Helper()
	s := map[string]any{"device_id": "d-1", "iccid": validICCID}
	for k, v := range sim {
		if v == nil {
			delete(s, k)
			continue
		}
		s[k] = v
	}
	b, err := json.Marshal(map[string]any{"command_id": "c-1", "actor_id": "u-1", "sim": s})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// raw is a JSON literal inserted as is.
type raw string

func (r raw) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestSimInputRules(t *testing.T) {
	t.Parallel()
	metadata := func(n int) raw {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
		}
		return raw("{" + strings.Join(parts, ",") + "}")
	}
	tests := []struct {
		name   string
		sim    map[string]any
		fields []string // fields at fault; empty means valid
	}{
		{"valid minimal", nil, nil},
		{"iccid 17 digits", map[string]any{"iccid": strings.Repeat("1", 17)}, []string{"iccid"}},
		{"iccid 18 digits", map[string]any{"iccid": strings.Repeat("1", 18)}, nil},
		{"iccid 22 digits", map[string]any{"iccid": strings.Repeat("1", 22)}, nil},
		{"iccid 23 digits", map[string]any{"iccid": strings.Repeat("1", 23)}, []string{"iccid"}},
		{"iccid with a space", map[string]any{"iccid": "894450010219830482 6"}, []string{"iccid"}},
		{"iccid padded is not trimmed", map[string]any{"iccid": " " + validICCID}, []string{"iccid"}},
		{"iccid arabic-indic digits", map[string]any{"iccid": strings.Repeat("٣", 19)}, []string{"iccid"}},
		{"iccid fullwidth digits", map[string]any{"iccid": strings.Repeat("１", 19)}, []string{"iccid"}},
		{"iccid letter", map[string]any{"iccid": "89445001021983048A6"}, []string{"iccid"}},
		{"iccid number type", map[string]any{"iccid": raw("8944500102198304826")}, []string{"iccid"}},
		{"iccid missing", map[string]any{"iccid": nil}, []string{"iccid"}},
		{"iccid null", map[string]any{"iccid": raw("null")}, []string{"iccid"}},
		{"iccid empty", map[string]any{"iccid": ""}, []string{"iccid"}},
		{"device_id missing", map[string]any{"device_id": nil}, []string{"device_id"}},
		{"device_id empty", map[string]any{"device_id": ""}, []string{"device_id"}},
		{"device_id number", map[string]any{"device_id": 7}, []string{"device_id"}},
		{"device_id NUL", map[string]any{"device_id": "d\u0000"}, []string{"device_id"}},
		{"msisdn 20", map[string]any{"msisdn": strings.Repeat("1", 20)}, nil},
		{"msisdn 21", map[string]any{"msisdn": strings.Repeat("1", 21)}, []string{"msisdn"}},
		{"msisdn 20 multibyte characters", map[string]any{"msisdn": strings.Repeat("é", 20)}, nil},
		{"msisdn 21 multibyte characters", map[string]any{"msisdn": strings.Repeat("é", 21)}, []string{"msisdn"}},
		{"msisdn number", map[string]any{"msisdn": 4915112345678}, []string{"msisdn"}},
		{"msisdn null", map[string]any{"msisdn": raw("null")}, nil},
		{"status 30", map[string]any{"status": strings.Repeat("s", 30)}, nil},
		{"status 31", map[string]any{"status": strings.Repeat("s", 31)}, []string{"status"}},
		{"status 30 emoji", map[string]any{"status": strings.Repeat("😀", 30)}, nil},
		{"status 31 emoji", map[string]any{"status": strings.Repeat("😀", 31)}, []string{"status"}},
		{"status open set", map[string]any{"status": "retired"}, nil},
		{"status bool", map[string]any{"status": true}, []string{"status"}},
		{"communication_plan 255", map[string]any{"communication_plan": strings.Repeat("p", 255)}, nil},
		{"communication_plan 256", map[string]any{"communication_plan": strings.Repeat("p", 256)}, []string{"communication_plan"}},
		{"rate_plan 255", map[string]any{"rate_plan": strings.Repeat("ж", 255)}, nil},
		{"rate_plan 256", map[string]any{"rate_plan": strings.Repeat("ж", 256)}, []string{"rate_plan"}},
		{"rate_plan object", map[string]any{"rate_plan": map[string]any{}}, []string{"rate_plan"}},
		{"mno_integration_id number", map[string]any{"mno_integration_id": 1}, []string{"mno_integration_id"}},
		{"metadata 50 keys", map[string]any{"sim_metadata": metadata(50)}, nil},
		{"metadata 51 keys", map[string]any{"sim_metadata": metadata(51)}, []string{"sim_metadata"}},
		{"metadata repeated key counts once", map[string]any{"sim_metadata": raw(strings.TrimSuffix(string(metadata(50)), "}") + `,"k0":1}`)}, nil},
		{"metadata array", map[string]any{"sim_metadata": raw(`[1,2]`)}, []string{"sim_metadata"}},
		{"metadata string", map[string]any{"sim_metadata": "{}"}, []string{"sim_metadata"}},
		{"metadata number", map[string]any{"sim_metadata": 5}, []string{"sim_metadata"}},
		{"metadata nested", map[string]any{"sim_metadata": raw(`{"a":{"b":[1,{"c":null}]},"n":1e3}`)}, nil},
		{"metadata NUL in value", map[string]any{"sim_metadata": raw(`{"a":"x\u0000"}`)}, []string{"sim_metadata"}},
		{"metadata NUL in key", map[string]any{"sim_metadata": raw(`{"a\u0000":1}`)}, []string{"sim_metadata"}},
		{"metadata escaped backslash u0000 is fine", map[string]any{"sim_metadata": raw(`{"a":"\\u0000"}`)}, nil},
		{"metadata number of 101 digits written out", map[string]any{"sim_metadata": raw(`{"a":1e100}`)}, []string{"sim_metadata"}},
		{"metadata number of 100 digits written out", map[string]any{"sim_metadata": raw(`{"a":1e99}`)}, nil},
		{"metadata huge exponent", map[string]any{"sim_metadata": raw(`{"a":1e99999999999999999999}`)}, []string{"sim_metadata"}},
		{"read-only fields ignored", map[string]any{"id": "x", "company_id": 5, "ctd_data_usage": "lots", "sim_barred": "yes",
			"created_at": 1, "created_by": []int{1}, "updated_at": nil, "updated_by": true, "last_sync_at": "x",
			"ctd_sms_usage": 1, "included_usage": 1, "overage_limit_reached": 1}, nil},
		{"unknown fields ignored", map[string]any{"colour": "red", "nested": map[string]any{"a": 1}}, nil},
		{"every error at once", map[string]any{"device_id": nil, "iccid": "1", "msisdn": 5, "status": strings.Repeat("s", 31),
			"communication_plan": 1, "rate_plan": 1, "mno_integration_id": false, "sim_metadata": "x"},
			[]string{"device_id", "mno_integration_id", "iccid", "msisdn", "status", "communication_plan", "rate_plan", "sim_metadata"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := ParseCommand([]byte(body(t, tt.sim)))
			if env.CommandID != "c-1" {
				t.Fatalf("command id = %q", env.CommandID)
			}
			if len(tt.fields) == 0 {
				if env.Reject != nil {
					t.Fatalf("rejected: %+v", env.Reject)
				}
				return
			}
			if env.Reject == nil {
				t.Fatalf("accepted, want errors on %v", tt.fields)
			}
			if env.Reject.Code != CodeInvalidArgument || env.Reject.Code.Status() != 400 {
				t.Fatalf("code = %s", env.Reject.Code)
			}
			var got []string
			for _, f := range env.Reject.Fields {
				got = append(got, f.Field)
				if f.Reason == "" {
					t.Errorf("field %s has no reason", f.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields = %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	for _, b := range []string{
		`{"command_id":"c","actor_id":"a","sim":{"device_id":"d","iccid":"` + validICCID + `"}}`,
		`{"command_id":"c","actor_id":"a","sim":{"device_id":"d","iccid":"` + validICCID + `","status":null,"sim_metadata":null,"msisdn":null}}`,
	} {
		env := ParseCommand([]byte(b))
		if env.Reject != nil {
			t.Fatalf("%s: rejected %+v", b, env.Reject)
		}
		in := env.Command.Sim
		if in.Status != "inactive" || string(in.SimMetadata) != "{}" || in.MSISDN != nil || in.MNOIntegrationID != nil ||
			in.CommunicationPlan != nil || in.RatePlan != nil {
			t.Fatalf("defaults not applied: %+v", in)
		}
	}
}

func TestMetadataKeepsNumbersExactly(t *testing.T) {
	t.Parallel()
	env := ParseCommand([]byte(`{"command_id":"c","actor_id":"a","sim":{"device_id":"d","iccid":"` + validICCID +
		`","sim_metadata":{ "big" : 12345678901234567890, "tenth": 0.1 }}}`))
	if env.Reject != nil {
		t.Fatal(env.Reject)
	}
	if got := string(env.Command.Sim.SimMetadata); got != `{"big": 12345678901234567890, "tenth": 0.1}` {
		t.Fatalf("metadata = %s", got)
	}
}

func TestEnvelopeChecksInOrder(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 129)
	tests := []struct {
		name      string
		body      string
		commandID string
		code      Code
		fields    []string
	}{
		{"not JSON", `hello`, "", CodeInvalidArgument, nil},
		{"truncated JSON", `{"command_id":"c-1"`, "", CodeInvalidArgument, nil},
		{"invalid UTF-8", "{\"command_id\":\"c-\xff\"}", "", CodeInvalidArgument, nil},
		{"empty body", ``, "", CodeInvalidArgument, nil},
		{"JSON array", `[{"command_id":"c-1"}]`, "", CodeInvalidArgument, nil},
		{"JSON null", `null`, "", CodeInvalidArgument, nil},
		{"command_id missing", `{"actor_id":"u"}`, "", CodeInvalidArgument, nil},
		{"command_id number", `{"command_id":12,"actor_id":"u"}`, "", CodeInvalidArgument, nil},
		{"command_id empty", `{"command_id":"","actor_id":"u"}`, "", CodeInvalidArgument, nil},
		{"command_id 129 characters", `{"command_id":"` + long + `","actor_id":"u"}`, "", CodeInvalidArgument, nil},
		{"command_id 128 multibyte characters", `{"command_id":"` + strings.Repeat("é", 128) + `"}`, strings.Repeat("é", 128), CodeUnauthorized, nil},
		{"actor_id missing beats a bad sim", `{"command_id":"c-1","sim":5}`, "c-1", CodeUnauthorized, nil},
		{"actor_id empty", `{"command_id":"c-1","actor_id":"","sim":{}}`, "c-1", CodeUnauthorized, nil},
		{"actor_id number", `{"command_id":"c-1","actor_id":7,"sim":{}}`, "c-1", CodeUnauthorized, nil},
		{"sim missing", `{"command_id":"c-1","actor_id":"u"}`, "c-1", CodeInvalidArgument, []string{"sim"}},
		{"sim array", `{"command_id":"c-1","actor_id":"u","sim":[]}`, "c-1", CodeInvalidArgument, []string{"sim"}},
		{"sim null", `{"command_id":"c-1","actor_id":"u","sim":null}`, "c-1", CodeInvalidArgument, []string{"sim"}},
		{"sim empty object", `{"command_id":"c-1","actor_id":"u","sim":{}}`, "c-1", CodeInvalidArgument, []string{"device_id", "iccid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := ParseCommand([]byte(tt.body))
			if env.CommandID != tt.commandID {
				t.Fatalf("command id = %q, want %q", env.CommandID, tt.commandID)
			}
			if env.Reject == nil || env.Reject.Code != tt.code {
				t.Fatalf("reject = %+v, want code %s", env.Reject, tt.code)
			}
			var got []string
			for _, f := range env.Reject.Fields {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields = %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestRejectedEventShape(t *testing.T) {
	t.Parallel()
	env := ParseCommand([]byte(`{"command_id":"c-0002","actor_id":"u","sim":{"device_id":"d","iccid":"12"}}`))
	o := NewRejected("simworker", "e-1", env.CommandID, time.Now(), env.Reject)
	var ev struct {
		CloudEvent
		Data Rejection `json:"data"`
	}
	if err := json.Unmarshal(o.Event, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion != "1.0" || ev.Type != "sim.rejected" || ev.Subject != "c-0002" || ev.CommandID != "c-0002" ||
		ev.DataContentType != "application/json" || ev.Data.Status != 400 || ev.Data.Code != CodeInvalidArgument ||
		len(ev.Data.Errors) != 1 || ev.Data.Errors[0].Field != "iccid" || ev.Data.Message != "iccid: must be 18 to 22 digits" {
		t.Fatalf("event = %s", o.Event)
	}

	noID := NewRejected("simworker", "e-2", "", time.Now(), &Error{Code: CodeInvalidArgument, Message: "x"})
	var m map[string]any
	if err := json.Unmarshal(noID.Event, &m); err != nil {
		t.Fatal(err)
	}
	if _, has := m["subject"]; has {
		t.Fatalf("subject present without a command id: %s", noID.Event)
	}
	if errs, ok := m["data"].(map[string]any)["errors"].([]any); !ok || len(errs) != 0 {
		t.Fatalf("errors must be [] : %s", noID.Event)
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	if ErrorCode(fmt.Errorf("wrapped: %w", &Error{Code: CodeNotFound})) != CodeNotFound {
		t.Fatal("wrapped domain error lost its code")
	}
	if ErrorCode(fmt.Errorf("boom")) != CodeInternal {
		t.Fatal("unknown error must be internal")
	}
}

func TestCostBounds(t *testing.T) {
	t.Parallel()
	nest := func(levels int) raw { // levels objects, the top one included
		return raw(strings.Repeat(`{"a":`, levels-1) + `{}` + strings.Repeat(`}`, levels-1))
	}
	keys := func(perObject int) raw { // 20 top-level keys, each an object of perObject keys
		var outer []string
		for i := 0; i < 20; i++ {
			var inner []string
			for j := 0; j < perObject; j++ {
				inner = append(inner, fmt.Sprintf(`"k%d":%d`, j, j))
			}
			outer = append(outer, fmt.Sprintf(`"o%d":{%s}`, i, strings.Join(inner, ",")))
		}
		return raw("{" + strings.Join(outer, ",") + "}")
	}
	tests := []struct {
		name  string
		md    raw
		valid bool
	}{
		{"depth 16", nest(16), true},
		{"depth 17", nest(17), false},
		{"depth 16 through arrays", raw(`{"a":` + strings.Repeat("[", 15) + strings.Repeat("]", 15) + `}`), true},
		{"depth 17 through arrays", raw(`{"a":` + strings.Repeat("[", 16) + strings.Repeat("]", 16) + `}`), false},
		{"1000 keys at all levels", keys(49), true},  // 20 + 20*49
		{"1020 keys at all levels", keys(50), false}, // 20 + 20*50
		{"array elements are not keys", raw(`{"a":[` + strings.TrimSuffix(strings.Repeat(`"s",`, 3000), ",") + `]}`), true},
		{"keys after nested values still count", raw(`{"a":{"b":[{"c":1}]},"d":1}`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := ParseCommand([]byte(body(t, map[string]any{"sim_metadata": tt.md})))
			if tt.valid != (env.Reject == nil) {
				t.Fatalf("valid = %v, reject = %+v", env.Reject == nil, env.Reject)
			}
			if !tt.valid && env.Reject.Fields[0].Field != "sim_metadata" {
				t.Fatalf("field %s", env.Reject.Fields[0].Field)
			}
		})
	}
	big := `{"command_id":"c","actor_id":"u","sim":{"device_id":"d","iccid":"` + validICCID + `","rate_plan":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`
	env := ParseCommand([]byte(big))
	if env.Reject == nil || env.CommandID != "" || !strings.Contains(env.Reject.Message, "at most 65536") {
		t.Fatalf("oversized body: %+v", env)
	}
}

func TestUnpairedSurrogates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, md string
		valid    bool
	}{
		{"pair", `{"a":"\ud83d\ude00"}`, true},
		{"lone high in value", `{"a":"\ud800"}`, false},
		{"lone low in key", `{"\udc00":1}`, false},
		{"high then letter", `{"a":"\ud800x"}`, false},
		{"high then other escape", `{"a":"\ud800\n"}`, false},
		{"reversed pair", `{"a":"\ude00\ud83d"}`, false},
		{"escaped backslash before u", `{"a":"\\ud800"}`, true},
		{"zero with a huge exponent is zero", `{"a":0e200000}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := ParseCommand([]byte(body(t, map[string]any{"sim_metadata": raw(tt.md)})))
			if (env.Reject == nil) != tt.valid {
				t.Fatalf("valid = %v, want %v: %+v", env.Reject == nil, tt.valid, env.Reject)
			}
		})
	}
	// Two command ids that encoding/json would both decode to U+FFFD.
	for _, id := range []string{`"\ud800"`, `"c-\udfff"`} {
		if env := ParseCommand([]byte(`{"command_id":` + id + `,"actor_id":"u"}`)); env.CommandID != "" {
			t.Fatalf("command id %s accepted as %q", id, env.CommandID)
		}
	}
	env := ParseCommand([]byte(body(t, map[string]any{"msisdn": raw(`"\udfff"`)})))
	if env.Reject == nil || env.Reject.Fields[0].Field != "msisdn" {
		t.Fatalf("lone surrogate in msisdn: %+v", env.Reject)
	}
}

// TestMetadataNumbersWrittenOut: a number counts the digits PostgreSQL
// writes for it (plain decimal notation, its scale kept), at most 100.
func TestMetadataNumbersWrittenOut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		num    string
		digits int // 0: refused before counting (an exponent too long)
		out    string
	}{
		{"0", 1, "0"}, {"-0", 1, "0"}, {"-0.00", 3, "0.00"}, {"0e999999999", 1, "0"}, {"0.0e5", 1, "0"},
		{"1e3", 4, "1000"}, {"1e-3", 4, "0.001"}, {"1.50", 3, "1.50"}, {"1.0e2", 3, "100"}, {"1.50e1", 3, "15.0"},
		{"-12.5E+1", 3, "-125"}, {"10.5e-1", 3, "1.05"}, {"0.001e-2", 6, "0.00001"}, {"123.456", 6, "123.456"},
		{"1e99", 100, "1" + strings.Repeat("0", 99)}, {"1e-99", 100, "0." + strings.Repeat("0", 98) + "1"},
		{"-1e99", 100, "-1" + strings.Repeat("0", 99)},
		{"1e100", 101, "1" + strings.Repeat("0", 100)}, {"1e-100", 101, "0." + strings.Repeat("0", 99) + "1"},
		{strings.Repeat("9", 100), 100, strings.Repeat("9", 100)}, {"0." + strings.Repeat("9", 99), 100, "0." + strings.Repeat("9", 99)},
		{"1e131071", 131072, ""}, {"1e0000000000003", 4, "1000"}, {"1e1000000000", 0, ""},
	} {
		n, ok := writtenOut([]byte(tt.num))
		if tt.digits == 0 {
			if ok {
				t.Errorf("%s: counted, want refused", tt.num)
			}
			continue
		}
		if !ok || n.digits != tt.digits || tt.digits <= MaxMetadataNumberDigits && string(n.text) != tt.out {
			t.Errorf("%s: %d digits, %s (ok %v), want %d digits, %s", tt.num, n.digits, n.text, ok, tt.digits, tt.out)
		}
		env := ParseCommand([]byte(body(t, map[string]any{"sim_metadata": raw(`{"n":` + tt.num + `}`)})))
		if valid := tt.digits <= MaxMetadataNumberDigits; valid != (env.Reject == nil) {
			t.Errorf("%s: accepted %v, want %v (%+v)", tt.num, env.Reject == nil, valid, env.Reject)
		} else if !valid && (env.Reject.Fields[0].Field != "sim_metadata" || !strings.Contains(env.Reject.Message, "100 digits")) {
			t.Errorf("%s: %+v", tt.num, env.Reject)
		}
	}
}

// StoredMetadata is an object whose stored form (as jsonb prints it) is
// exactly size bytes, from a short body: 1e99 is 4 bytes sent and 100
// stored.
func storedMetadata(size int) string {
	k := (size - 16 - 1) / 102 // see below: room for a string of at least 1
	pad := size - 16 - 102*k   // {"a": [n, n, ...], "s": "pad"}: 16 + 102k + len(pad)
	return `{"a":[` + strings.TrimSuffix(strings.Repeat("1e99,", k), ",") + `],"s":"` + strings.Repeat("x", pad) + `"}`
}

// TestMetadataStoredSize: the whole object at most 65,536 bytes as stored
// (numbers written out), however few bytes were sent; a repeated key
// counts once, with its last value.
func TestMetadataStoredSize(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		md    string
		valid bool
	}{
		{"65536 bytes stored", storedMetadata(MaxMetadataStoredBytes), true},
		{"65537 bytes stored", storedMetadata(MaxMetadataStoredBytes + 1), false},
		{"the 195-byte request", `{"n0":1e131071,"n1":1e131071,"n2":1e131071,"n3":1e131071,"n4":1e131071,"n5":1e131071,"n6":1e131071,"n7":1e131071,"n8":1e131071}`, false},
		{"an earlier value of a repeated key is not stored",
			strings.TrimSuffix(storedMetadata(MaxMetadataStoredBytes), "}") + `,"s":"` + strings.Repeat("x", 36) + `"}`, true},
		{"escapes stored as sent", // `, "c": "\u0001"` is 15 bytes stored
			strings.TrimSuffix(storedMetadata(MaxMetadataStoredBytes-15), "}") + `,"c":"\u0001"}`, true},
		{"escapes stored as sent, one byte over",
			strings.TrimSuffix(storedMetadata(MaxMetadataStoredBytes-14), "}") + `,"c":"\u0001"}`, false},
		{"unicode escapes stored as UTF-8", // `, "c": "é"` is 11 bytes stored
			strings.TrimSuffix(storedMetadata(MaxMetadataStoredBytes-11), "}") + `,"c":"\u00e9"}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if len(tt.md) > 8000 {
				t.Fatalf("%d bytes sent: the point is a short body", len(tt.md))
			}
			env := ParseCommand([]byte(body(t, map[string]any{"sim_metadata": raw(tt.md)})))
			if tt.valid != (env.Reject == nil) {
				t.Fatalf("accepted %v, want %v: %+v", env.Reject == nil, tt.valid, env.Reject)
			}
			if !tt.valid && (env.Reject.Fields[0].Field != "sim_metadata" || !strings.Contains(env.Reject.Message, "65536")) &&
				!strings.Contains(env.Reject.Message, "digits") {
				t.Fatalf("rejection %+v", env.Reject)
			}
		})
	}
	if n, _ := MetadataStoredLen([]byte(storedMetadata(1000))); n != 1000 {
		t.Fatalf("the helper makes %d bytes, want 1000", n)
	}
}
