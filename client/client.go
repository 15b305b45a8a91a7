// Package client is the NATS side of the contract, for anyone who publishes
// Create-SIM commands or reads their outcomes: the streams, subjects and
// headers, the one way a command and an outcome event are put on the wire,
// and a watch on the outcome events. simctl uses it, and so does the worker
// (package consumer) for everything it puts on the wire.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/domain"
)

// Names of the contract.
const (
	CommandsStream  = "SIM_COMMANDS"
	CommandsSubject = "sim.commands.>"
	CreateSubject   = "sim.commands.create"
	EventsStream    = "SIM_EVENTS"
	EventsSubject   = "sim.events.>"
	SubjectCreated  = "sim.events.created"  // sim.created events
	SubjectRejected = "sim.events.rejected" // sim.rejected events
	// DeadLetterStream keeps the commands that failed unexpectedly past their
	// retries (their outcome is a 500 internal), for inspection.
	DeadLetterStream   = "SIM_DEADLETTER"
	DeadLetterSubjects = "sim.deadletter.>"
	DeadLetterSubject  = "sim.deadletter.create"
)

// Headers. A replayed command (simctl replay) names its original with
// HeaderOrigStream, HeaderOrigSeq and HeaderOrigTime; a dead letter carries
// all of them.
const (
	HeaderError      = "Sim-Error"
	HeaderCommandID  = "Sim-Command-Id"
	HeaderOrigSeq    = "Sim-Original-Seq"  // stream sequence of the original command
	HeaderOrigTime   = "Sim-Original-Time" // RFC 3339 time the original command was stored
	HeaderOrigStream = "Sim-Original-Stream"
	HeaderDeliveries = "Sim-Deliveries"
	// HeaderBodyOmitted marks a dead letter sent without the command's body
	// (the server refused it for its size): how large it was, and why.
	HeaderBodyOmitted = "Sim-Body-Omitted"
)

// positionNamespace scopes the event ids derived from stream positions.
var positionNamespace = uuid.MustParse("6d1f4a52-8e0b-4a43-9c57-7f0d7b1f3c2e")

// PositionEventID is the event id of the rejection of a command body without
// a valid command id, stored at stream/seq: the same on every delivery and
// replay of that message.
func PositionEventID(stream string, seq uint64) string {
	return uuid.NewSHA1(positionNamespace, []byte(stream+"/"+strconv.FormatUint(seq, 10))).String()
}

// CommandMsg is a command message: Nats-Msg-Id = msgID (none when empty).
func CommandMsg(body []byte, msgID string) *nats.Msg {
	m := nats.NewMsg(CreateSubject)
	m.Data = body
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	return m
}

// SubjectOf is the subject an outcome's event is published on.
func SubjectOf(o domain.Outcome) string {
	if o.Type == domain.TypeCreated {
		return SubjectCreated
	}
	return SubjectRejected
}

// EventMsg is the NATS message of an outcome: a structured-mode CloudEvent
// with Nats-Msg-Id = event id, so JetStream drops a re-publish inside its
// duplicate window.
func EventMsg(o domain.Outcome) *nats.Msg {
	m := nats.NewMsg(SubjectOf(o))
	m.Data = o.Event
	m.Header.Set(jetstream.MsgIDHeader, o.EventID)
	m.Header.Set("Content-Type", "application/cloudevents+json")
	return m
}

// PublishOutcome re-emits a stored outcome, exactly as the worker publishes it.
func PublishOutcome(js jetstream.JetStream, o domain.Outcome) (jetstream.PubAckFuture, error) {
	return js.PublishMsgAsync(EventMsg(o), jetstream.WithExpectStream(EventsStream))
}

// The JetStream errors of a message's own (nats-server's errors.json).
const (
	jsStreamMessageExceedsMaximum = 10054 // "message size exceeds maximum allowed"
	jsStreamHeaderExceedsMaximum  = 10097 // "header size exceeds maximum allowed"
	jsStreamStoreFailed           = 10077 // "{err}": the message's own only for "message too large"
)

// Refused reports whether a publish failed for what the message is (larger
// than the server's maximum payload, or than the stream takes), which no
// retry can cure, rather than for an outage that passes (no connection, no
// acknowledgement, storage full, a stream at its limits). A failure that
// retrying cannot cure is never taken for an outage: retried, it would be
// retried for ever.
func Refused(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsStreamMessageExceedsMaximum, jsStreamHeaderExceedsMaximum:
		return true
	case jsStreamStoreFailed:
		return strings.Contains(apiErr.Description, "message too large")
	}
	return false
}

// Event is an outcome event as read back from SIM_EVENTS.
type Event struct {
	domain.CloudEvent
	Raw []byte
}

// ParseEvent decodes an outcome event; an error when data is no CloudEvent.
func ParseEvent(data []byte) (Event, error) {
	ev := Event{Raw: data}
	err := json.Unmarshal(data, &ev.CloudEvent)
	return ev, err
}

// Rejection decodes sim.rejected data (zero for sim.created).
func (e Event) Rejection() domain.Rejection {
	var r domain.Rejection
	if e.Type == domain.TypeRejected {
		_ = json.Unmarshal(e.Data, &r)
	}
	return r
}

// SimID is the id of the created SIM (empty for sim.rejected).
func (e Event) SimID() string {
	if e.Type == domain.TypeCreated {
		return e.Subject
	}
	return ""
}

// WatchOutcomes calls fn for every event in SIM_EVENTS from a duplicate window
// before `from` onwards, including those published later, until the returned
// stop is called. Starting a duplicate window early matters: a command already
// decided inside the window has its outcome re-published and de-duplicated by
// JetStream, so the only copy in the stream is the earlier one.
func WatchOutcomes(ctx context.Context, js jetstream.JetStream, from time.Time, fn func(Event)) (stop func(), err error) {
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	start := from.Add(-s.CachedInfo().Config.Duplicates - 30*time.Second)
	oc, err := js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventsSubject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", EventsStream, err)
	}
	cc, err := oc.Consume(func(m jetstream.Msg) {
		if ev, err := ParseEvent(m.Data()); err == nil {
			fn(ev)
		}
	})
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}
