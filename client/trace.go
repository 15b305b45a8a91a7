package client

import (
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// Trace context travels in W3C Trace Context headers (traceparent,
// tracestate): on a command's NATS message, from whoever published it to
// the worker, and, as the CloudEvents traceparent attribute, on its outcome
// event.

// TraceContext is the propagator of the contract: W3C Trace Context.
var TraceContext = propagation.TraceContext{}

// HeaderCarrier lets a propagator read and write a NATS message's headers.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the value of key.
func (h HeaderCarrier) Get(key string) string { return nats.Header(h).Get(key) }

// Set sets key to value.
func (h HeaderCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }

// Keys lists the header names.
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
