package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/client"
	"simworker/domain"
)

// A failure that retrying cannot cure is never an outage: a message the
// server refuses for what it is (larger than its maximum payload, larger
// than the stream allows) is refused on every attempt. Taken for an
// outage, such a command is retried and handed back for ever, and keeps the
// worker not ready (what a 195-byte request once did, through numbers that
// PostgreSQL writes out in full). So each publish error is sorted here.

// ownFault reports whether a publish failed for a reason of the message's
// own, which no retry can cure (client.Refused, or an event known to be
// larger than the events stream takes). Everything else (no connection, no
// acknowledgement, no responders, storage full, a stream at its limits) is
// an outage that passes.
func ownFault(err error) bool {
	var tooLarge *errTooLarge
	return errors.As(err, &tooLarge) || client.Refused(err)
}

// errTooLarge: an event larger than the events stream takes, found before
// publishing it. Core NATS delivers a message to subscribers (the API's
// waiting requests among them) even when the stream then refuses it, so an
// event the stream is known to refuse is never sent.
type errTooLarge struct{ size, limit int }

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("the event is %d bytes with its headers; %s takes at most %d (max_msg_size)", e.size, client.EventsStream, e.limit)
}

// eventsLimit is the events stream's max_msg_size as last read: 0 for none.
type eventsLimit struct{ bytes atomic.Int64 }

// load reads the stream's limit; a failure keeps the last one known (the
// stream still refuses what is too large, and that refusal is sorted too).
func (l *eventsLimit) load(ctx context.Context, js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, client.EventsStream)
	if err != nil {
		return
	}
	l.bytes.Store(max(0, int64(s.CachedInfo().Config.MaxMsgSize)))
}

// check is an *errTooLarge when o's event message is larger than the
// limit, else nil; with no limit (the default) it costs nothing.
func (l *eventsLimit) check(o domain.Outcome) error {
	limit := l.bytes.Load()
	if limit <= 0 || int64(len(o.Event)) <= limit-1024 { // headers are far below 1 KiB
		return nil
	}
	m := client.EventMsg(o)
	size := len(m.Data) + headerLen(m)
	if int64(size) <= limit {
		return nil
	}
	return &errTooLarge{size: size, limit: int(limit)}
}

// headerLen is the length of m's headers as nats.go sends them (and the
// stream counts them): "NATS/1.0\r\n", each "Key: value\r\n", "\r\n".
func headerLen(m *nats.Msg) int {
	if len(m.Header) == 0 {
		return 0
	}
	var b bytes.Buffer
	_ = http.Header(m.Header).Write(&b)
	return len("NATS/1.0\r\n") + b.Len() + len("\r\n")
}

// OutcomeReplacer is what a Handler offers (app.App does) so that a
// command whose outcome event cannot be published for a reason of its own
// gets its 500 internal instead.
type OutcomeReplacer interface {
	// ReplaceWithInternal replaces the stored outcome o by a 500 internal
	// rejection, undoing the SIM o created (it was never announced), and
	// returns the outcome now stored: that rejection, or whatever another
	// worker stored meanwhile.
	ReplaceWithInternal(ctx context.Context, o domain.Outcome, traceParent string) (domain.Outcome, error)
}

// unpublishable handles a command whose outcome event the server refused
// for what it is: a dead letter with the cause, its stored outcome replaced
// by 500 internal, which is small enough to go out. It returns the item
// with its new outcome to publish, or an error: an outage met on the way,
// or no way to give it a publishable outcome (then it is handed back, and
// the log says why, naming it).
func (w *Worker) unpublishable(ctx context.Context, it *item, pubErr error) error {
	log := w.log.With(it.logFields()...)
	cause := fmt.Sprintf("its outcome event (%s, %d bytes) could not be published: %v", it.outcome.Type, len(it.outcome.Event), pubErr)
	if it.outcome.Status == 500 || it.env.CommandID == "" {
		// Even a 500 internal, or a rejection of a body without a command id
		// (nothing stored to replace), does not fit: the server's limits are
		// too small for any outcome. An operator's problem, not the command's.
		log.Error("an outcome event cannot be published: the NATS server's limits are too small for it", zap.String("cause", cause))
		return fmt.Errorf("%w: nats: %s", domain.ErrUnavailable, cause)
	}
	replacer, ok := w.h.(OutcomeReplacer)
	if !ok {
		return fmt.Errorf("%w: %s (and the handler cannot replace it)", domain.ErrUnavailable, cause)
	}
	log.Error("command is poison: its outcome cannot be published; dead-lettering it and recording 500 internal", zap.String("cause", cause))
	if err := w.retry(ctx, "dependency unavailable: backing off", func() error { return w.deadLetter(ctx, it, cause) }); err != nil {
		return err
	}
	var o domain.Outcome
	if _, err := w.retryOutages(func(ctx context.Context, _ []*item) ([]domain.Outcome, error) {
		var err error
		o, err = replacer.ReplaceWithInternal(ctx, *it.outcome, it.env.TraceParent)
		if err != nil && !errors.Is(err, domain.ErrUnavailable) {
			// Not the command's doing either: the stored row could not be
			// replaced. Waited out as an outage, never a second outcome.
			err = fmt.Errorf("%w: replace the outcome: %v", domain.ErrUnavailable, err)
		}
		return nil, err
	})(ctx, []*item{it}); err != nil {
		return err
	}
	it.outcome = &o
	log.Info("outcome replaced by 500 internal", zap.String("event_id", o.EventID), zap.String("type", o.Type),
		zap.Int("status", o.Status), zap.String("size", strconv.Itoa(len(o.Event))))
	return nil
}
