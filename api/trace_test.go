package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"simworker/api"
	"simworker/client"
	"simworker/consumer/consumertest"
)

// TestOneTraceFromRequestToEvent: with a tracer provider recording (the
// SDK's in-memory exporter), a POST /v1/sims that carries a traceparent
// makes one trace: the client's span, the API's request span, the worker's
// per-command span, and the outcome event, whose traceparent attribute
// names the worker's span (and is stored with it).
func TestOneTraceFromRequestToEvent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	w := setup(t, api.Config{})
	w.startWorker()
	clientCtx, clientSpan := tp.Tracer("test-client").Start(context.Background(), "client: create a SIM")
	traceID := clientSpan.SpanContext().TraceID()
	header := http.Header{}
	client.TraceContext.Inject(clientCtx, propagationHeader(header))
	a := w.do(http.MethodPost, "/v1/sims", w.token("u-alice"), `{"device_id":"d-1","iccid":"8944500102198399001"}`,
		"Content-Type", "application/json", "traceparent", header.Get("traceparent"))
	clientSpan.End()
	if a.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", a.StatusCode, a.body)
	}
	commandID := a.Header.Get("Sim-Command-Id")

	// The spans of the one trace, by name.
	byName := map[string]tracetest.SpanStub{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == traceID {
				byName[s.Name] = s
			}
		}
		if len(byName) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, cmd := byName["POST /v1/sims"], byName["sim.command"]
	if !req.SpanContext.IsValid() || !cmd.SpanContext.IsValid() {
		t.Fatalf("spans of the trace: %v", names(byName))
	}
	if req.Parent.SpanID() != clientSpan.SpanContext().SpanID() || req.SpanKind != trace.SpanKindServer {
		t.Errorf("the request span's parent is %s, want the client's %s", req.Parent.SpanID(), clientSpan.SpanContext().SpanID())
	}
	if cmd.Parent.SpanID() != req.SpanContext.SpanID() || cmd.SpanKind != trace.SpanKindConsumer {
		t.Errorf("the command span's parent is %s, want the request's %s", cmd.Parent.SpanID(), req.SpanContext.SpanID())
	}
	batchLinked := false
	for _, s := range exp.GetSpans() {
		for _, l := range s.Links {
			if s.Name == "sim.batch" && l.SpanContext.SpanID() == cmd.SpanContext.SpanID() {
				batchLinked = true
			}
		}
	}
	if !batchLinked {
		t.Error("no sim.batch span links the command's span")
	}
	o, err := w.app.StoredOutcome(context.Background(), commandID)
	if err != nil || o == nil {
		t.Fatalf("stored outcome: %v %v", o, err)
	}
	ev, err := client.ParseEvent(o.Event)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + traceID.String() + "-" + cmd.SpanContext.SpanID().String() + "-01"
	if ev.TraceParent != want {
		t.Fatalf("the event's traceparent is %q, want the worker's span %q", ev.TraceParent, want)
	}
	// The event published is the one stored.
	events := consumertest.StreamMessages(t, w.js, client.EventsStream)
	if len(events) != 1 || !strings.Contains(string(events[0].Data), `"traceparent":"`+want+`"`) {
		t.Fatalf("the published event lacks the traceparent: %s", events[0].Data)
	}
}

type propagationHeader http.Header

func (h propagationHeader) Get(k string) string { return http.Header(h).Get(k) }
func (h propagationHeader) Set(k, v string)     { http.Header(h).Set(k, v) }
func (h propagationHeader) Keys() []string {
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

func names(m map[string]tracetest.SpanStub) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	return out
}
