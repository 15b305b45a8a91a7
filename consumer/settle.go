package consumer

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// This file is the only one that acknowledges, hands back or keeps alive a
// command message: every other part of the worker says what should become
// of a message as a verdict, and settle carries it out.

// verdict is what becomes of one command message. The zero value hands the
// message back at once, so a verdict forgotten never acknowledges anything.
type verdict struct {
	ack   bool          // the outcome is in SIM_EVENTS: acknowledge
	delay time.Duration // otherwise NAK: redelivered after delay (0: at once)
}

var (
	ackIt  = verdict{ack: true}
	nakNow = verdict{} // stopping, or never started: another worker takes it at once
)

// nakAfter hands a message back to be redelivered after d (an outage that
// outlasted the retry window).
func nakAfter(d time.Duration) verdict { return verdict{delay: d} }

func (v verdict) String() string {
	switch {
	case v.ack:
		return "ack"
	case v.delay > 0:
		return "nak_with_delay"
	default:
		return "nak"
	}
}

// settle carries out v on the message of it. JetStream not taking it is no
// loss: the command is redelivered (after AckWait at the latest) and its
// stored outcome re-published; it is logged and counted so that it is seen.
func (w *Worker) settle(it *item, v verdict) {
	var err error
	switch {
	case v.ack:
		err = it.msg.Ack()
	case v.delay > 0:
		w.naked.add(it)
		err = it.msg.NakWithDelay(v.delay)
	default:
		w.naked.add(it)
		err = it.msg.Nak()
	}
	if err == nil {
		return
	}
	w.cfg.Observer.AckFailed()
	w.log.Warn("acknowledgement not taken: the command will be redelivered",
		append(it.logFields(), zap.Stringer("verdict", v), zap.Error(err))...)
}

// settleAll gives every item the same verdict.
func (w *Worker) settleAll(its []*item, v verdict) {
	for _, it := range its {
		w.settle(it, v)
	}
}

// nakFor is the verdict for work that ended in err: at once when stopping,
// otherwise after the delay the outage's backoff had reached (or a first
// backoff interval for an error that is no outage).
func (w *Worker) nakFor(err error, n int) verdict {
	if errors.Is(err, errStopping) {
		return nakNow
	}
	var oe *outageError
	var delay time.Duration
	if errors.As(err, &oe) {
		delay = oe.delay
	} else {
		delay = newBackoff(w.cfg).NextBackOff()
	}
	w.log.Warn("outage outlasted the retry window: NAK with delay", zap.Int("size", n),
		zap.Duration("delay", delay), zap.Error(err))
	return nakAfter(delay)
}

// heartbeat keeps the batch's messages from being redelivered while work on
// them goes on longer than AckWait: InProgress every third of it, until the
// returned stop is called.
func (w *Worker) heartbeat(its []*item) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(w.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, it := range its {
					// Errors are ignored: a message settled already refuses it
					// (client side), and a beat lost to NATS costs at most a
					// redelivery, which is idempotent; the next tick tries again.
					_ = it.msg.InProgress()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
