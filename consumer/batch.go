package consumer

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/client"
	"simworker/domain"
)

// item is one command message on its way through a batch.
type item struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	env     domain.Envelope
	outcome *domain.Outcome
	suspect bool // redelivered without this worker handing it back: it may have crashed a worker (crash.go)
}

// newItem decodes a command message.
func newItem(m jetstream.Msg) *item {
	it := &item{msg: m, env: domain.ParseCommand(m.Data())}
	it.meta, _ = m.Metadata()
	return it
}

func (it *item) logFields() []zap.Field {
	f := []zap.Field{zap.String("command_id", it.env.CommandID)}
	if it.meta != nil {
		f = append(f, zap.Uint64("stream_seq", it.meta.Sequence.Stream), zap.Uint64("delivered", it.meta.NumDelivered))
	}
	return f
}

// process takes one batch from decode to settlement.
func (w *Worker) process(ctx context.Context, batch []jetstream.Msg) {
	start := time.Now()
	items, todo := w.prepare(batch)
	ctx, endSpans := w.traceBatch(ctx, items)
	defer endSpans()

	stopBeat := w.heartbeat(items)
	defer stopBeat()

	if len(todo) > 0 {
		outs, err := w.decideAll(ctx, todo)
		if err != nil {
			w.settleAll(items, w.nakFor(err, len(items)))
			return
		}
		for i, it := range todo {
			it.outcome = &outs[i]
		}
	}
	w.publishAndAck(ctx, items, start)
}

// decideAll decides the commands of a batch, one outcome each in order:
// the suspects alone (crash.go), the others together.
func (w *Worker) decideAll(ctx context.Context, todo []*item) ([]domain.Outcome, error) {
	outs := make([]domain.Outcome, len(todo))
	var rest []*item
	var at []int
	for i, it := range todo {
		if !it.suspect {
			rest, at = append(rest, it), append(at, i)
			continue
		}
		o, err := w.decideSuspect(ctx, it)
		if err != nil {
			return nil, err
		}
		outs[i] = o[0]
	}
	if len(rest) > 0 {
		o, err := w.decide(ctx, rest)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			outs[i] = o[k]
		}
	}
	return outs, nil
}

// prepare decodes the batch. A body without a command id gets its rejection
// here; todo is what the handler decides.
func (w *Worker) prepare(batch []jetstream.Msg) (items, todo []*item) {
	items = make([]*item, len(batch))
	for i, m := range batch {
		it := newItem(m)
		if it.meta != nil && it.meta.NumDelivered > 1 {
			w.cfg.Observer.Redelivered()
			it.suspect = w.naked.suspect(it)
		}
		items[i] = it
		if it.env.CommandID == "" {
			// No command id, no idempotency key: the event id derives from the
			// message's place in the stream, so a redelivery re-publishes the
			// very same event.
			pos, at := position(m, it.meta)
			o := w.h.Unidentified(pos, at, it.env.Reject)
			it.outcome = &o
			continue
		}
		todo = append(todo, it)
	}
	return items, todo
}

// position is where a command was first stored, as the event id of a
// rejection without a command id, and when: the stream, sequence and time of
// the original message. A replayed copy (simctl replay) names its original in
// headers, so such a rejection keeps the very same event on every run.
func position(m jetstream.Msg, meta *jetstream.MsgMetadata) (string, time.Time) {
	h := m.Headers()
	if stream := h.Get(client.HeaderOrigStream); stream != "" {
		seq, serr := strconv.ParseUint(h.Get(client.HeaderOrigSeq), 10, 64)
		at, terr := time.Parse(time.RFC3339Nano, h.Get(client.HeaderOrigTime))
		if serr == nil && terr == nil {
			return client.PositionEventID(stream, seq), at
		}
	}
	if meta == nil {
		return uuid.Must(uuid.NewV7()).String(), time.Now()
	}
	return client.PositionEventID(meta.Stream, meta.Sequence.Stream), meta.Timestamp
}
