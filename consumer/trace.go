package consumer

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"simworker/client"
)

// tracerName names the worker's spans' instrumentation scope.
const tracerName = "simworker/consumer"

// traceBatch starts a span for each command, the child of the trace its
// message carries (a traceparent header), and one for the batch, linked to
// them (the batch span first: when it records nothing, no other is made);
// each command's traceparent goes into its envelope, and from there
// into its outcome event. The spans come from the global tracer provider
// (none recorded unless the program set one up). The returned function ends
// them, a command without a published outcome marked as an error.
func (w *Worker) traceBatch(ctx context.Context, items []*item) (context.Context, func()) {
	tracer := otel.GetTracerProvider().Tracer(tracerName)
	bctx, batch := tracer.Start(ctx, "sim.batch", trace.WithAttributes(attribute.Int("simworker.batch_size", len(items))))
	if !batch.IsRecording() {
		// No spans recorded (no OTEL_* settings): nothing to start or end per
		// command. A command that carries a trace still hands it on to its
		// event, as a non-recording span would: the traceparent it came with.
		for _, it := range items {
			if h := it.msg.Headers(); h != nil && h.Get("traceparent") != "" {
				parent := trace.SpanContextFromContext(client.TraceContext.Extract(ctx, client.HeaderCarrier(h)))
				if parent.IsValid() {
					carrier := propagation.MapCarrier{}
					client.TraceContext.Inject(trace.ContextWithSpanContext(ctx, parent), carrier)
					it.env.TraceParent = carrier["traceparent"]
				}
			}
		}
		return ctx, func() {}
	}
	spans := make([]trace.Span, len(items))
	for i, it := range items {
		parent := client.TraceContext.Extract(ctx, client.HeaderCarrier(it.msg.Headers()))
		cctx, span := tracer.Start(parent, "sim.command", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("simworker.command_id", it.env.CommandID)))
		spans[i] = span
		if sc := span.SpanContext(); sc.IsValid() {
			carrier := propagation.MapCarrier{}
			client.TraceContext.Inject(cctx, carrier)
			it.env.TraceParent = carrier["traceparent"]
			batch.AddLink(trace.Link{SpanContext: sc})
		}
	}
	return bctx, func() {
		for i, span := range spans {
			if o := items[i].outcome; o != nil {
				span.SetAttributes(attribute.String("simworker.outcome", o.Type), attribute.Int("simworker.status", o.Status),
					attribute.String("simworker.event_id", o.EventID))
			} else {
				span.SetStatus(codes.Error, "no outcome: handed back")
			}
			span.End()
		}
		batch.End()
	}
}
