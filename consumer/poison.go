package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"simworker/domain"
)

// handle is the innermost layer: the Handler itself, a panic in it turned
// into an unexpected error.
func (w *Worker) handle(ctx context.Context, its []*item) (outs []domain.Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	envs := make([]domain.Envelope, len(its))
	for i, it := range its {
		envs[i] = it.env
	}
	outs, err = w.h.Handle(ctx, envs)
	if err == nil && len(outs) != len(envs) {
		err = fmt.Errorf("handler returned %d outcomes for %d commands", len(outs), len(envs))
	}
	return outs, err
}

// unexpected: neither success, nor an outage, nor shutdown.
func unexpected(err error) bool {
	return err != nil && !errors.Is(err, errStopping) && !errors.Is(err, domain.ErrUnavailable)
}

// isolatePoison is the poison layer around next: a batch that fails
// unexpectedly is decided again one command at a time, so that the command
// at fault is isolated and the others are decided normally.
func (w *Worker) isolatePoison(next decideFunc) decideFunc {
	return func(ctx context.Context, its []*item) ([]domain.Outcome, error) {
		outs, err := next(ctx, its)
		if !unexpected(err) {
			return outs, err
		}
		if len(its) == 1 {
			return w.poison(ctx, next, its[0], err)
		}
		w.log.Warn("batch failed unexpectedly: deciding its commands one by one", zap.Int("size", len(its)), zap.Error(err))
		outs = make([]domain.Outcome, 0, len(its))
		for _, it := range its {
			o, err := next(ctx, []*item{it})
			if unexpected(err) {
				o, err = w.poison(ctx, next, it, err)
			}
			if err != nil {
				return nil, err
			}
			outs = append(outs, o...)
		}
		return outs, nil
	}
}

// poison retries one command that failed unexpectedly PoisonRetries times,
// with a growing pause; past them it dead-letters it and gives it a 500
// internal outcome, so that it never blocks those behind it.
func (w *Worker) poison(ctx context.Context, next decideFunc, it *item, err error) ([]domain.Outcome, error) {
	log := w.log.With(it.logFields()...)
	its := []*item{it}
	for attempt := 1; ; attempt++ {
		log.Warn("command failed unexpectedly", zap.Int("attempt", attempt), zap.Error(err))
		if attempt > w.cfg.PoisonRetries {
			break
		}
		if !w.sleep(ctx, time.Duration(attempt)*200*time.Millisecond) {
			return nil, errStopping
		}
		var outs []domain.Outcome
		if outs, err = next(ctx, its); !unexpected(err) {
			return outs, err
		}
	}
	cause := err.Error()
	log.Error("command is poison: dead-lettering it and recording 500 internal", zap.String("cause", cause))
	return w.deadLetterInternal(ctx, it, cause)
}

// deadLetterInternal sends a command to SIM_DEADLETTER with its cause and
// decides it as a 500 internal. The dead letter goes first: if the worker
// dies before the 500 is stored, the redelivery repeats both (the dead
// letter is de-duplicated by id).
func (w *Worker) deadLetterInternal(ctx context.Context, it *item, cause string) ([]domain.Outcome, error) {
	if err := w.retry(ctx, "dependency unavailable: backing off", func() error {
		return w.deadLetter(ctx, it, cause)
	}); err != nil {
		return nil, err
	}
	internal := *it
	internal.env = domain.InternalEnvelope(it.env.CommandID)
	return w.retryOutages(w.handle)(ctx, []*item{&internal})
}
