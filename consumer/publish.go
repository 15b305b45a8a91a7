package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/client"
	"simworker/domain"
)

// publishAckTimeout bounds the wait for JetStream to acknowledge an event.
const publishAckTimeout = 10 * time.Second

var errPubAckTimeout = errors.New("no publish acknowledgement within 10s")

// publishAndAck publishes every outcome and waits for JetStream's
// acknowledgements, then acknowledges the commands whose outcome is safely in
// SIM_EVENTS. Events that failed are published again, with backoff, within
// RetryWindow; a command whose event could still not be published is NAKed:
// its outcome is stored, so its redelivery re-publishes the same event.
func (w *Worker) publishAndAck(ctx context.Context, items []*item, batchStart time.Time) {
	pending := items
	err := w.retry(ctx, "publishing outcomes failed: backing off", func() error {
		var err error
		if pending, err = w.publishOnce(ctx, pending, batchStart); len(pending) == 0 {
			return nil
		}
		if errors.Is(err, errStopping) {
			return err
		}
		return fmt.Errorf("%w: nats: %d events not published: %v", domain.ErrUnavailable, len(pending), err)
	})
	if err != nil {
		w.settleAll(pending, w.nakFor(err, len(pending)))
	}
}

// publishOnce publishes the outcomes of pending at once and acknowledges each
// command as JetStream acknowledges its event; it returns the items whose
// event was not acknowledged, and the last error.
func (w *Worker) publishOnce(ctx context.Context, pending []*item, batchStart time.Time) ([]*item, error) {
	ackTimeout := time.NewTimer(publishAckTimeout)
	defer ackTimeout.Stop()
	futures := make([]jetstream.PubAckFuture, len(pending))
	errs := make([]error, len(pending))
	for i, it := range pending {
		futures[i], errs[i] = client.PublishOutcome(w.js, *it.outcome)
	}
	var failed []*item
	var lastErr error
	for i, it := range pending {
		if errs[i] == nil {
			errs[i] = awaitPubAck(ctx, futures[i], ackTimeout)
		}
		if errs[i] != nil {
			failed, lastErr = append(failed, it), errs[i]
			continue
		}
		w.logOutcome(it)
		w.settle(it, ackIt)
		w.cfg.Observer.Outcome(*it.outcome, time.Since(batchStart))
	}
	return failed, lastErr
}

// awaitPubAck waits for JetStream's answer to one publish. timeout is shared
// by the batch: once it fired, every answer not already there is late.
func awaitPubAck(ctx context.Context, f jetstream.PubAckFuture, timeout *time.Timer) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-timeout.C:
		// A lost acknowledgement (a stream leader that died before
		// answering) must not hold the batch forever.
		timeout.Reset(0)
		return errPubAckTimeout
	case <-ctx.Done():
		return errStopping
	}
}

func (w *Worker) logOutcome(it *item) {
	ce := w.log.Check(zap.InfoLevel, "outcome published")
	if ce == nil {
		return
	}
	o := it.outcome
	fields := append(it.logFields(), zap.String("type", o.Type), zap.String("event_id", o.EventID),
		zap.Int("status", o.Status), zap.Bool("replayed", o.Replayed))
	if o.Code != "" {
		fields = append(fields, zap.String("code", string(o.Code)))
	}
	if o.SimID != "" {
		fields = append(fields, zap.String("sim_id", o.SimID))
	}
	ce.Write(fields...)
}

// deadLetter keeps a copy of a poison command, with why, on SIM_DEADLETTER.
func (w *Worker) deadLetter(ctx context.Context, it *item, cause string) error {
	m := nats.NewMsg(client.DeadLetterSubject)
	m.Data = it.msg.Data()
	m.Header.Set(jetstream.MsgIDHeader, "deadletter:"+it.env.CommandID)
	m.Header.Set(client.HeaderCommandID, it.env.CommandID)
	if len(cause) > 2000 {
		cause = cause[:2000]
	}
	m.Header.Set(client.HeaderError, strings.ReplaceAll(cause, "\n", " "))
	if it.meta != nil {
		m.Header.Set(client.HeaderOrigStream, it.meta.Stream)
		m.Header.Set(client.HeaderOrigSeq, strconv.FormatUint(it.meta.Sequence.Stream, 10))
		m.Header.Set(client.HeaderOrigTime, it.meta.Timestamp.UTC().Format(time.RFC3339Nano))
		m.Header.Set(client.HeaderDeliveries, strconv.FormatUint(it.meta.NumDelivered, 10))
	}
	if _, err := w.js.PublishMsg(ctx, m, jetstream.WithExpectStream(client.DeadLetterStream)); err != nil {
		return fmt.Errorf("%w: nats: dead letter: %v", domain.ErrUnavailable, err)
	}
	w.cfg.Observer.DeadLetter()
	return nil
}
