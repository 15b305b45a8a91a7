package consumer

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"simworker/domain"
)

// A command that kills the worker (a runtime fatal error, an out-of-memory
// kill, a bug in a dependency's goroutine) never returns an error to count:
// it comes back after AckWait, with its batch, to the next worker. So a
// command redelivered without this worker having handed it back is a
// suspect: it is decided alone, never again in a batch, and each attempt at
// it is marked in PostgreSQL first (CrashCounter). An attempt found still
// marked when the next begins never ended: a crash. Past PoisonCrashes of
// them the command is dead-lettered with its 500 internal, as a command
// that fails is. Outages and hand-backs end their attempt, so they never
// count; a suspect's first crash in its batch cannot be told from a
// hand-back by another worker, so counting starts with its attempts alone.

// CrashCounter is the durable count of crashed attempts that a Handler may
// offer (app.App does). Without it, suspects are still decided alone.
type CrashCounter interface {
	// BeginAttempt marks an attempt at commandID in progress and returns
	// how many earlier ones crashed; attempt is the same on every retry of
	// one attempt's mark, so a retry is never taken for a crash.
	BeginAttempt(ctx context.Context, commandID, attempt string) (crashes int, err error)
	// EndAttempt: the attempt ended, decided (the mark goes) or handed back
	// (its own mark, if it made one, goes).
	EndAttempt(ctx context.Context, commandID, attempt string, decided bool) error
}

// handedBack remembers the deliveries this worker NAKed, by stream
// sequence, so that their redelivery is not taken for a crash.
type handedBack struct {
	mu   sync.Mutex
	seqs map[uint64]uint64 // stream sequence: the delivery NAKed
}

func (h *handedBack) add(it *item) {
	if it.meta == nil {
		return
	}
	h.mu.Lock()
	if len(h.seqs) >= 1<<17 { // redelivered to other workers, never seen again here
		clear(h.seqs)
	}
	h.seqs[it.meta.Sequence.Stream] = it.meta.NumDelivered
	h.mu.Unlock()
}

// suspect reports whether it is a redelivery this worker did not cause.
func (h *handedBack) suspect(it *item) bool {
	if it.meta == nil || it.meta.NumDelivered <= 1 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, ok := h.seqs[it.meta.Sequence.Stream]
	delete(h.seqs, it.meta.Sequence.Stream)
	return !ok || prev != it.meta.NumDelivered-1
}

// decideSuspect decides a suspect alone, its attempt marked durably first,
// or dead-letters it once PoisonCrashes attempts crashed.
func (w *Worker) decideSuspect(ctx context.Context, it *item) ([]domain.Outcome, error) {
	counter, ok := w.h.(CrashCounter)
	if !ok {
		return w.decide(ctx, []*item{it})
	}
	log := w.log.With(it.logFields()...)
	var crashes int
	attempt := uuid.Must(uuid.NewV7()).String()
	if err := w.retry(ctx, "dependency unavailable: backing off", func() error {
		actx, cancel := context.WithTimeout(ctx, w.cfg.DecideTimeout)
		defer cancel()
		var err error
		crashes, err = counter.BeginAttempt(actx, it.env.CommandID, attempt)
		return err
	}); err != nil {
		// The mark may have been made and its answer lost: end it, so that
		// this hand-back is not taken for a crash.
		w.endAttempt(ctx, counter, it, attempt, false, log)
		return nil, err
	}
	var outs []domain.Outcome
	var err error
	if crashes >= w.cfg.PoisonCrashes {
		cause := fmt.Sprintf("the worker died %d times while deciding this command", crashes)
		log.Error("command crashed the worker: dead-lettering it and recording 500 internal", zap.Int("crashes", crashes))
		outs, err = w.deadLetterInternal(ctx, it, cause)
	} else {
		if crashes > 0 {
			log.Warn("command redelivered after a crash: deciding it alone", zap.Int("crashes", crashes))
		}
		outs, err = w.decide(ctx, []*item{it})
	}
	// Ended, whatever the end: only a crash may leave the mark. So the mark
	// goes before the command is handed back, however long PostgreSQL takes
	// to come back (the heartbeat keeps the message meanwhile); only a stop
	// of the worker in the middle of that leaves it.
	w.endAttempt(ctx, counter, it, attempt, err == nil, log)
	return outs, err
}

// endAttempt clears the mark of an attempt, retrying through an outage
// until it is done or the worker stops.
func (w *Worker) endAttempt(ctx context.Context, counter CrashCounter, it *item, attempt string, decided bool, log *zap.Logger) {
	b := newBackoff(w.cfg)
	for {
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.DecideTimeout)
		err := counter.EndAttempt(ectx, it.env.CommandID, attempt, decided)
		cancel()
		if err == nil {
			return
		}
		wait := b.NextBackOff()
		log.Warn("could not end the attempt's mark: retrying", zap.Duration("retry_in", wait), zap.Error(err))
		if !w.sleep(ctx, wait) {
			return
		}
	}
}
