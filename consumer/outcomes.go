package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/domain"
)

// PositionEventID is the event id the worker gives the rejection of a command
// body without a valid command id, stored at stream/seq.
func PositionEventID(stream string, seq uint64) string {
	return uuid.NewSHA1(positionNamespace, []byte(stream+"/"+strconv.FormatUint(seq, 10))).String()
}

// Event is an outcome event as read back from SIM_EVENTS.
type Event struct {
	domain.CloudEvent
	Raw []byte
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
		var ev Event
		if json.Unmarshal(m.Data(), &ev.CloudEvent) != nil {
			return
		}
		ev.Raw = m.Data()
		fn(ev)
	})
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}

// PublishOutcome re-emits a stored outcome, exactly as the worker publishes it.
func PublishOutcome(js jetstream.JetStream, o domain.Outcome) (jetstream.PubAckFuture, error) {
	return js.PublishMsgAsync(eventMsg(o), jetstream.WithExpectStream(EventsStream))
}

// CommandMsg is a command message: Nats-Msg-Id = msgID.
func CommandMsg(body []byte, msgID string) *nats.Msg {
	m := nats.NewMsg(CreateSubject)
	m.Data = body
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	return m
}
