package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"simworker/domain"
)

// errStopping ends work on a batch when shutdown cuts it short; the batch is
// NAKed and redelivered, its outcome (if stored) re-published then.
var errStopping = errors.New("worker stopping")

// outageError is an outage that outlasted RetryWindow: the batch is handed
// back, to be redelivered after delay, the backoff the retries had reached.
type outageError struct {
	err   error
	delay time.Duration
}

func (e *outageError) Error() string { return e.err.Error() }
func (e *outageError) Unwrap() error { return e.err }

// newBackoff is the capped exponential backoff of one retry: every call of
// retry has its own, so a batch that meets an outage late does not inherit
// the long waits of one that met it early.
func newBackoff(cfg Config) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = cfg.MaxBackoff
	b.MaxElapsedTime = 0 // retry bounds the retries by RetryWindow itself
	b.Reset()
	return b
}

// retryOutages is the outage layer around next: an outage is retried in
// place, and never reaches the layers outside as an unexpected failure.
// Each attempt has DecideTimeout: one that outlasts it is an outage too.
func (w *Worker) retryOutages(next decideFunc) decideFunc {
	return func(ctx context.Context, its []*item) ([]domain.Outcome, error) {
		var outs []domain.Outcome
		err := w.retry(ctx, "dependency unavailable: backing off", func() error {
			actx, cancel := context.WithTimeout(ctx, w.cfg.DecideTimeout)
			defer cancel()
			var err error
			outs, err = next(actx, its)
			if err != nil && ctx.Err() == nil && actx.Err() != nil && !errors.Is(err, domain.ErrUnavailable) {
				err = fmt.Errorf("%w: no answer from PostgreSQL within %s: %v", domain.ErrUnavailable, w.cfg.DecideTimeout, err)
			}
			return err
		})
		return outs, err
	}
}

// retry calls op until it succeeds or fails with something other than an
// outage (an error wrapping domain.ErrUnavailable), which it returns as it
// is. During an outage it backs off, logging msg and telling the Observer,
// for at most RetryWindow; then it gives up with an *outageError so the
// batch is NAKed with a delay. Shutdown ends the wait with errStopping.
func (w *Worker) retry(ctx context.Context, msg string, op func() error) error {
	b := newBackoff(w.cfg)
	start := time.Now()
	for {
		err := op()
		switch {
		case err == nil:
			w.outage.recovered()
			return nil
		case ctx.Err() != nil || errors.Is(err, errStopping):
			return errStopping
		case !errors.Is(err, domain.ErrUnavailable):
			return err
		}
		wait := b.NextBackOff()
		w.log.Warn(msg, zap.Duration("retry_in", wait), zap.Error(err))
		w.cfg.Observer.Unavailable()
		w.outage.failed(err)
		if time.Since(start)+wait > w.cfg.RetryWindow {
			return &outageError{err: err, delay: b.NextBackOff()}
		}
		if !w.sleep(ctx, wait) {
			return errStopping
		}
	}
}

// outageState is whether the worker is held up by an outage: the last
// attempt at anything (deciding, publishing) failed with one, and none has
// succeeded since.
type outageState struct {
	mu    sync.Mutex
	err   error
	since time.Time
}

func (o *outageState) failed(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.since = time.Now()
	}
	o.err = err
}

func (o *outageState) recovered() {
	o.mu.Lock()
	o.err = nil
	o.mu.Unlock()
}

// BackingOff is the outage the worker is waiting out, and since when; nil
// while it decides and publishes. /readyz reports it.
func (w *Worker) BackingOff() (since time.Time, err error) {
	w.outage.mu.Lock()
	defer w.outage.mu.Unlock()
	return w.outage.since, w.outage.err
}

// sleep waits d; false when shutdown or ctx cut it short.
func (w *Worker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-w.stop:
		return false
	}
}
