package domain

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// compactMarshal is what encoding/json makes of v, for comparison.
func compactMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	sync := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	for _, sim := range []Sim{
		{ID: "01a2", CompanyID: "co", DeviceID: "d", ICCID: "8944500102198304826", Status: "inactive",
			SimMetadata: json.RawMessage(`{}`), CreatedAt: time.Unix(1700000000, 123456000).UTC(), UpdatedAt: time.Unix(1700000000, 0).UTC(),
			CreatedBy: "u", UpdatedBy: "u"},
		{ID: "x\"y", CompanyID: "<&>", DeviceID: "tab\there\nnl\r\u0001\u001f", MNOIntegrationID: s("m\\1"), ICCID: "1",
			MSISDN: s("é😀\u2028\u2029"), Status: "bad\xffutf8", CommunicationPlan: s(""), RatePlan: s("r"),
			SimMetadata:  json.RawMessage(`{"n":12345678901234567890,"f":0.1,"a":[1,{"b":null}]}`),
			CtdDataUsage: -5, CtdSMSUsage: 7, IncludedUsage: 1 << 40, OverageLimitReached: true, SimBarred: true,
			LastSyncAt: &sync, CreatedAt: sync, UpdatedAt: sync, CreatedBy: "ü", UpdatedBy: "v"},
	} {
		got := encodeSim(nil, sim)
		if want := compactMarshal(t, sim); !bytes.Equal(got, want) {
			t.Errorf("sim:\n got %s\nwant %s", got, want)
		}
		ev := CloudEvent{SpecVersion: "1.0", ID: "e<1>", Source: "s&", Type: TypeCreated, Subject: sim.ID,
			Time: "t", DataContentType: ContentTypeJSON, CommandID: "c\u2028", Data: got}
		if g, w := encodeEvent(ev), compactMarshal(t, ev); !bytes.Equal(g, w) {
			t.Errorf("event:\n got %s\nwant %s", g, w)
		}
		ev.Subject = ""
		if g, w := encodeEvent(ev), compactMarshal(t, ev); !bytes.Equal(g, w) {
			t.Errorf("event without subject:\n got %s\nwant %s", g, w)
		}
		// NewCreated writes the event and its data in one buffer.
		o, err := NewCreated("s&", "e<1>", "c\u2028", sim)
		if err != nil {
			t.Fatal(err)
		}
		want := compactMarshal(t, CloudEvent{SpecVersion: SpecVersion, ID: "e<1>", Source: "s&", Type: TypeCreated, Subject: sim.ID,
			Time: FormatTime(sim.CreatedAt), DataContentType: ContentTypeJSON, CommandID: "c\u2028", Data: got})
		if !bytes.Equal(o.Event, want) {
			t.Errorf("NewCreated:\n got %s\nwant %s", o.Event, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\<>&\u2028\u2029\x00\x1f\xff", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendString(nil, s), compactMarshal(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}

// EventCommandID reads the commandid of every event the encoder writes, ids
// with escapes included, and is not fooled by a "commandid" in the SIM.
func TestEventCommandID(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0).UTC()
	sim := Sim{ID: "s", CompanyID: "co", DeviceID: "d", ICCID: "8944500102198304826", Status: "active",
		SimMetadata: json.RawMessage(`{"commandid":"not-this-one","x":{"commandid":"nor-this"}}`), CreatedAt: at, UpdatedAt: at}
	for _, id := range []string{"c-1", "", `q"uote`, `back\slash`, "é😀\u2028", "<&>", `,"commandid":"x`} {
		created, err := NewCreated("src", "e", id, sim)
		if err != nil {
			t.Fatal(err)
		}
		rejected := NewRejected(`s,"commandid":"src`, "e", id, at, &Error{Code: CodeInvalidArgument, Message: `,"commandid":"m`})
		for _, o := range []Outcome{created, rejected} {
			if got := EventCommandID(o.Event); got != id {
				t.Errorf("EventCommandID(%s) = %q, want %q", o.Event, got, id)
			}
		}
	}
	for _, notEvent := range []string{"", "null", "{", `{"commandid":7}`, `[1]`} {
		if got := EventCommandID([]byte(notEvent)); got != "" {
			t.Errorf("EventCommandID(%q) = %q, want empty", notEvent, got)
		}
	}
}

// TestWithTraceParent: the traceparent attribute goes where encoding/json
// puts the field, once, and leaves everything else byte for byte.
func TestWithTraceParent(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0).UTC()
	sim := Sim{ID: "s", CompanyID: "co", DeviceID: "d", ICCID: "8944500102198304826", Status: "active",
		SimMetadata: json.RawMessage(`{"data":"x"}`), CreatedAt: at, UpdatedAt: at}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	created, err := NewCreated("src", "e-1", "c-1", sim)
	if err != nil {
		t.Fatal(err)
	}
	traced := created.WithTraceParent(tp)
	want := compactMarshal(t, CloudEvent{SpecVersion: SpecVersion, ID: "e-1", Source: "src", Type: TypeCreated, Subject: "s",
		Time: FormatTime(at), DataContentType: ContentTypeJSON, CommandID: "c-1", TraceParent: tp, Data: encodeSim(nil, sim)})
	if !bytes.Equal(traced.Event, want) {
		t.Fatalf("traced:\n got %s\nwant %s", traced.Event, want)
	}
	if again := traced.WithTraceParent("00-other"); !bytes.Equal(again.Event, traced.Event) {
		t.Fatalf("a second traceparent was added: %s", again.Event)
	}
	if untraced := created.WithTraceParent(""); !bytes.Equal(untraced.Event, created.Event) {
		t.Fatal("an empty traceparent changed the event")
	}
	if got := EventCommandID(traced.Event); got != "c-1" {
		t.Fatalf("EventCommandID of a traced event: %q", got)
	}
	rej := NewRejected("src", "e-2", "c-2", at, &Error{Code: CodeNotFound, Message: "no"}).WithTraceParent(tp)
	var ev CloudEvent
	if err := json.Unmarshal(rej.Event, &ev); err != nil || ev.TraceParent != tp || ev.CommandID != "c-2" {
		t.Fatalf("traced rejection: %v %+v", err, ev)
	}
}
