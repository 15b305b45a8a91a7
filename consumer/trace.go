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
// them; each command's traceparent goes into its envelope, and from there
// into its outcome event. The spans come from the global tracer provider
// (none recorded unless the program set one up). The returned function ends
// them, a command without a published outcome marked as an error.
func (w *Worker) traceBatch(ctx context.Context, items []*item) (context.Context, func()) {
	tracer := otel.GetTracerProvider().Tracer(tracerName)
	spans := make([]trace.Span, len(items))
	links := make([]trace.Link, 0, len(items))
	for i, it := range items {
		parent := client.TraceContext.Extract(ctx, client.HeaderCarrier(it.msg.Headers()))
		cctx, span := tracer.Start(parent, "sim.command", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("simworker.command_id", it.env.CommandID)))
		spans[i] = span
		if sc := span.SpanContext(); sc.IsValid() {
			carrier := propagation.MapCarrier{}
			client.TraceContext.Inject(cctx, carrier)
			it.env.TraceParent = carrier["traceparent"]
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	bctx, batch := tracer.Start(ctx, "sim.batch", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("simworker.batch_size", len(items))))
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
