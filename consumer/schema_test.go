package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"simworker/client"
	"simworker/consumer"
	"simworker/domain"
	"simworker/internal/testfactory"
)

var (
	schemaOnce sync.Once
	schemas    map[string]*jsonschema.Schema
	schemaErr  error
)

// schemaFor compiles docs/schemas once: the published contract.
func schemaFor(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		schemas = map[string]*jsonschema.Schema{}
		for _, n := range []string{"command", domain.TypeCreated, domain.TypeRejected} {
			var s *jsonschema.Schema
			if s, schemaErr = c.Compile("../docs/schemas/" + n + ".schema.json"); schemaErr != nil {
				return
			}
			schemas[n] = s
		}
	})
	if schemaErr != nil {
		t.Fatalf("compile schemas: %v", schemaErr)
	}
	return schemas[name]
}

// conforms checks raw JSON against the named schema.
func conforms(t *testing.T, name string, raw []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s is not JSON: %v", raw, err)
	}
	if err := schemaFor(t, name).Validate(v); err != nil {
		t.Errorf("%s does not conform to the %s schema: %v\n%s", raw, name, err, raw)
	}
}

// TestSchemasRejectWhatTheContractRejects: the schemas are not vacuous.
func TestSchemasRejectWhatTheContractRejects(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		schema, doc string
		valid       bool
	}{
		{"command", `{"command_id":"c-0001","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944500102198304826"}}`, true},
		{"command", `{"command_id":"c-1","actor_id":"u","sim":{"device_id":"d","iccid":"123"}}`, false},
		{"command", `{"command_id":"","actor_id":"u","sim":{"device_id":"d","iccid":"8944500102198304826"}}`, false},
		{"command", `{"command_id":"c","actor_id":"u","sim":{"device_id":"d","iccid":"8944500102198304826","msisdn":"123456789012345678901"}}`, false},
		{domain.TypeRejected, `{"specversion":"1.0","id":"0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b","source":"s","type":"sim.rejected","time":"2026-11-25T10:46:03Z","datacontenttype":"application/json","commandid":"","data":{"command_id":"","status":400,"code":"invalid_argument","message":"m","errors":[]}}`, true},
		{domain.TypeRejected, `{"specversion":"1.0","id":"0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b","source":"s","type":"sim.rejected","time":"2026-11-25T10:46:03Z","datacontenttype":"application/json","commandid":"","data":{"command_id":"","status":404,"code":"invalid_argument","message":"m","errors":[]}}`, false},
		{domain.TypeRejected, `{"specversion":"1.0","id":"0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b","source":"s","type":"sim.rejected","time":"2026-11-25T10:46:03Z","datacontenttype":"application/json","commandid":"","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":{"command_id":"","status":400,"code":"invalid_argument","message":"m","errors":[]}}`, true},
		{domain.TypeRejected, `{"specversion":"1.0","id":"0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b","source":"s","type":"sim.rejected","time":"2026-11-25T10:46:03Z","datacontenttype":"application/json","commandid":"","traceparent":"trace me","data":{"command_id":"","status":400,"code":"invalid_argument","message":"m","errors":[]}}`, false},
		{domain.TypeRejected, `{"specversion":"1.0","id":"not-a-uuid","source":"s","type":"sim.rejected","time":"2026-11-25T10:46:03Z","datacontenttype":"application/json","commandid":"","data":{"command_id":"","status":400,"code":"invalid_argument","message":"m","errors":[]}}`, false},
	} {
		v, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tt.doc)))
		if err := schemaFor(t, tt.schema).Validate(v); (err == nil) != tt.valid {
			t.Errorf("%s: valid=%v, want %v: %v\n%s", tt.schema, err == nil, tt.valid, err, tt.doc)
		}
	}
}

// TestTraceparentReachesTheEvent: a command published with a traceparent
// header gets an event in the same trace, with the CloudEvents traceparent
// attribute, that conforms to the published schema; one without gets none.
// No tracer provider records here: the trace passes through all the same.
func TestTraceparentReachesTheEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	c := testfactory.Command{ID: "c-traced", Sim: testfactory.Sim{ICCID: testfactory.ICCID()}}
	m := client.CommandMsg(c.Body(), c.ID)
	m.Header.Set("traceparent", parent)
	if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	b.command("c-untraced", testfactory.ICCID())
	traced, untraced := b.eventFor("c-traced"), b.eventFor("c-untraced")
	var ev domain.CloudEvent
	if err := json.Unmarshal(traced.raw, &ev); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.TraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Fatalf("the event's traceparent %q is not of the command's trace", ev.TraceParent)
	}
	conforms(t, traced.Type, traced.raw)
	if strings.Contains(string(untraced.raw), "traceparent") {
		t.Fatalf("an untraced command's event has a traceparent: %s", untraced.raw)
	}
}
