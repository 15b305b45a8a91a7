package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"simworker/client"
)

// Tracing sets OpenTelemetry up for a program. W3C Trace Context is always
// read and written (a command's traceparent header, an event's traceparent
// attribute); spans are recorded and exported over OTLP/HTTP only when the
// standard variables ask for it: OTEL_TRACES_EXPORTER=otlp, or
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set
// (OTEL_TRACES_EXPORTER=none turns it off). The exporter reads the other
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, TLS) and the resource
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; service is the service
// name otherwise. The returned function flushes and stops the exporter.
func Tracing(ctx context.Context, service string) (shutdown func(), enabled bool, err error) {
	otel.SetTextMapPropagator(client.TraceContext)
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	wanted := exporter == "otlp" || (exporter == "" &&
		(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""))
	if !wanted {
		return func() {}, false, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", service)), resource.WithFromEnv())
	if err != nil {
		return nil, false, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, true, nil
}
