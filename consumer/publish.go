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
// its outcome is stored, so its redelivery re-publishes the same event. An
// event refused for what it is (ownFault) is no outage: its command gets a
// 500 internal instead (unpublishable), and the others go on.
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
		return fmt.Errorf("%w: nats: %d events not published (commands %s): %v", domain.ErrUnavailable, len(pending), commandIDs(pending, 5), err)
	})
	if err != nil {
		w.settleAll(pending, w.nakFor(err, len(pending)))
	}
	w.logBatch(items, pending, batchStart)
}

// logBatch sums a batch up in one info line: its outcomes published by
// type and code, how many were stored before (replayed), what was handed
// back, its stream sequences and how long it took. A line per outcome, at
// 20,000 outcomes a second, cost the worker a tenth of its CPU and the
// operator's log its readability: those are at debug level (logOutcome).
func (w *Worker) logBatch(items, handedBack []*item, start time.Time) {
	ce := w.log.Check(zap.InfoLevel, "batch published")
	if ce == nil {
		return
	}
	created, replayed := 0, 0
	rejected := map[string]int{}
	var first, last uint64
	for _, it := range items {
		if it.meta != nil {
			if s := it.meta.Sequence.Stream; first == 0 || s < first {
				first = s
			}
			last = max(last, it.meta.Sequence.Stream)
		}
	}
	back := make(map[*item]bool, len(handedBack))
	for _, it := range handedBack {
		back[it] = true
	}
	for _, it := range items {
		o := it.outcome
		if o == nil || back[it] {
			continue
		}
		if o.Replayed {
			replayed++
		}
		if o.Type == domain.TypeCreated {
			created++
			continue
		}
		rejected[string(o.Code)]++
	}
	fields := []zap.Field{zap.Int("size", len(items)), zap.Int("created", created), zap.Any("rejected", rejected),
		zap.Int("replayed", replayed), zap.Int("handed_back", len(handedBack)),
		zap.Uint64("first_seq", first), zap.Uint64("last_seq", last), zap.Duration("took", time.Since(start))}
	ce.Write(fields...)
}

// publishOnce publishes the outcomes of pending at once and acknowledges each
// command as JetStream acknowledges its event; it returns the items whose
// event was not acknowledged, and the last error. An event refused for what
// it is gets its command's 500 internal, published in the same call.
func (w *Worker) publishOnce(ctx context.Context, pending []*item, batchStart time.Time) ([]*item, error) {
	var failed []*item
	var lastErr error
	for len(pending) > 0 {
		var refused []*item
		var refusedErrs []error
		f, err := w.publishRound(ctx, pending, batchStart, func(it *item, err error) {
			refused, refusedErrs = append(refused, it), append(refusedErrs, err)
		})
		failed = append(failed, f...)
		if err != nil {
			lastErr = err
		}
		pending = nil
		for i, it := range refused {
			if err := w.unpublishable(ctx, it, refusedErrs[i]); err != nil {
				failed, lastErr = append(failed, it), err
				continue
			}
			pending = append(pending, it) // its 500 internal, published in the next round
		}
	}
	return failed, lastErr
}

// publishRound publishes the outcomes of pending once; an event refused for
// a reason of its own goes to refused, not to the failures returned.
func (w *Worker) publishRound(ctx context.Context, pending []*item, batchStart time.Time, refused func(*item, error)) ([]*item, error) {
	ackTimeout := time.NewTimer(publishAckTimeout)
	defer ackTimeout.Stop()
	futures := make([]jetstream.PubAckFuture, len(pending))
	errs := make([]error, len(pending))
	for i, it := range pending {
		if errs[i] = w.eventsLimit.check(*it.outcome); errs[i] == nil {
			futures[i], errs[i] = client.PublishOutcome(w.js, *it.outcome)
		}
	}
	var failed []*item
	var lastErr error
	for i, it := range pending {
		if errs[i] == nil {
			errs[i] = awaitPubAck(ctx, futures[i], ackTimeout)
		}
		if errs[i] != nil && ownFault(errs[i]) {
			var apiErr *jetstream.APIError
			if errors.As(errs[i], &apiErr) { // the stream's limit changed: know it for the next ones
				w.eventsLimit.load(ctx, w.js)
			}
			refused(it, errs[i])
			continue
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

// commandIDs names at most n of the items' commands, for a log line.
func commandIDs(its []*item, n int) string {
	ids := make([]string, 0, min(n, len(its)))
	for _, it := range its[:min(n, len(its))] {
		id := it.env.CommandID
		if id == "" {
			id = "(none)"
		}
		ids = append(ids, strconv.Quote(id))
	}
	s := strings.Join(ids, ", ")
	if len(its) > n {
		s += fmt.Sprintf(" and %d more", len(its)-n)
	}
	return s
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
	ce := w.log.Check(zap.DebugLevel, "outcome published")
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
// A copy the server refuses for its size goes without the body (header
// Sim-Body-Omitted): the command stays in SIM_COMMANDS at its original
// sequence.
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
	_, err := w.js.PublishMsg(ctx, m, jetstream.WithExpectStream(client.DeadLetterStream))
	if err != nil && ownFault(err) {
		m.Header.Set(client.HeaderBodyOmitted, strconv.Itoa(len(m.Data))+" bytes: "+err.Error())
		m.Data = nil
		_, err = w.js.PublishMsg(ctx, m, jetstream.WithExpectStream(client.DeadLetterStream))
	}
	if err != nil {
		return fmt.Errorf("%w: nats: dead letter: %v", domain.ErrUnavailable, err)
	}
	w.cfg.Observer.DeadLetter()
	return nil
}
