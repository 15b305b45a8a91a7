package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"simworker/domain"
)

// retryWorker is a worker with nothing but what retry needs, its warnings
// kept for the test.
func retryWorker(cfg Config) (*Worker, *observer.ObservedLogs) {
	core, logs := observer.New(zap.WarnLevel)
	return &Worker{log: zap.New(core), cfg: cfg.withDefaults(), stop: make(chan struct{})}, logs
}

// waits are the backoffs retry logged for the operation failing with err.
func waits(logs *observer.ObservedLogs, err string) []time.Duration {
	var out []time.Duration
	for _, e := range logs.FilterMessage("dependency unavailable: backing off").All() {
		if fmt.Sprint(e.ContextMap()["error"]) == err {
			out = append(out, e.ContextMap()["retry_in"].(time.Duration))
		}
	}
	return out
}

// TestRetryBackoffIsPerBatch: a batch that meets an outage late starts from
// the first backoff interval, however long another batch has been backing
// off, and its success does not reset the other's backoff.
func TestRetryBackoffIsPerBatch(t *testing.T) {
	t.Parallel()
	w, logs := retryWorker(Config{MaxBackoff: 10 * time.Second, RetryWindow: time.Minute})
	ctx := context.Background()
	errA := fmt.Errorf("%w: batch A", domain.ErrUnavailable)
	errB := fmt.Errorf("%w: batch B", domain.ErrUnavailable)

	aDone := make(chan error, 1)
	go func() { aDone <- w.retry(ctx, "dependency unavailable: backing off", func() error { return errA }) }()
	// After five backoffs A's interval is 100ms x 1.5^5 = 759ms: a backoff
	// shared with A would give B at least half of that.
	deadline := time.Now().Add(20 * time.Second)
	for len(waits(logs, errA.Error())) < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("batch A backed off %d times in 20s", len(waits(logs, errA.Error())))
		}
		time.Sleep(10 * time.Millisecond)
	}

	failures := 2
	if err := w.retry(ctx, "dependency unavailable: backing off", func() error {
		if failures--; failures >= 0 {
			return errB
		}
		return nil
	}); err != nil {
		t.Fatalf("batch B: %v", err)
	}
	b := waits(logs, errB.Error())
	if len(b) != 2 || b[0] > 150*time.Millisecond || b[1] > 225*time.Millisecond {
		t.Fatalf("batch B backed off %v; want its own backoff from 100ms (at most 150ms, 225ms)", b)
	}

	// A goes on from where it was: B's success did not reset it.
	n := len(waits(logs, errA.Error()))
	for len(waits(logs, errA.Error())) == n {
		if time.Now().After(deadline) {
			t.Fatal("batch A stopped backing off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := waits(logs, errA.Error()); a[len(a)-1] < 300*time.Millisecond {
		t.Fatalf("batch A's backoff was reset: %v", a)
	}

	// Shutdown ends A's wait at once.
	close(w.stop)
	select {
	case err := <-aDone:
		if !errors.Is(err, errStopping) {
			t.Fatalf("batch A ended with %v, want errStopping", err)
		}
	case <-time.After(time.Second):
		t.Fatal("shutdown did not end batch A's wait")
	}
}

// TestRetryGivesUpAfterRetryWindow: an outage that outlasts RetryWindow ends
// in an outage error with the delay of the next backoff, for the NAK; an
// error that is no outage is returned at once, untried.
func TestRetryGivesUpAfterRetryWindow(t *testing.T) {
	t.Parallel()
	w, _ := retryWorker(Config{MaxBackoff: 200 * time.Millisecond, RetryWindow: 500 * time.Millisecond})
	ctx := context.Background()

	start := time.Now()
	calls := 0
	err := w.retry(ctx, "dependency unavailable: backing off", func() error {
		calls++
		return fmt.Errorf("%w: down", domain.ErrUnavailable)
	})
	var oe *outageError
	if !errors.As(err, &oe) || !errors.Is(err, domain.ErrUnavailable) || oe.delay <= 0 || oe.delay > 300*time.Millisecond {
		t.Fatalf("got %v (%+v), want an outage error with a delay up to 1.5 x MaxBackoff", err, oe)
	}
	if took := time.Since(start); took > 500*time.Millisecond || calls < 2 {
		t.Fatalf("%d calls in %s, want retries within the 500ms window", calls, took)
	}
	if v := w.nakFor(err, 1); v.ack || v.delay != oe.delay {
		t.Fatalf("verdict %+v for %v, want a NAK after %s", v, err, oe.delay)
	}

	calls = 0
	bug := errors.New("bug")
	if err := w.retry(ctx, "dependency unavailable: backing off", func() error { calls++; return bug }); err != bug || calls != 1 {
		t.Fatalf("unexpected error: got %v after %d calls, want it at once", err, calls)
	}
}
