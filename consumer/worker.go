// Package consumer is the JetStream side of the worker: it pulls Create-SIM
// commands from the durable consumer (set up by client.Setup), hands them to
// a transport-free Handler, publishes each outcome event and acknowledges
// the command only once JetStream has acknowledged the event.
package consumer

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/domain"
)

// Handler decides commands; it knows nothing of JetStream. Handle decides a
// batch in order and returns one outcome per envelope, or an error for the
// whole batch (nothing stored). An error wrapping domain.ErrUnavailable is an
// outage; any other is unexpected. A command that keeps failing unexpectedly
// gets its 500 internal outcome through Handle too, as
// domain.InternalEnvelope.
type Handler interface {
	Handle(ctx context.Context, envs []domain.Envelope) ([]domain.Outcome, error)
	// Unidentified is the rejection of a body without a command id, which
	// is not stored: its event id and time are the message's place in the
	// stream, so a redelivery publishes the very same event.
	Unidentified(eventID string, at time.Time, reject *domain.Error) domain.Outcome
}

// Config tunes the worker. Zero fields take the defaults in parentheses.
type Config struct {
	BatchSize       int           // commands decided in one transaction at most (500)
	Concurrency     int           // batches in flight at once, each in its own transaction (2)
	AckWait         time.Duration // the consumer's AckWait: InProgress is sent every third of it (30s)
	MaxBackoff      time.Duration // cap of the wait between retries during an outage (30s)
	RetryWindow     time.Duration // how long a batch is retried in place before a delayed NAK (15s)
	PoisonRetries   int           // retries of an unexpected failure before 500 internal (3)
	PoisonCrashes   int           // crashed attempts at a command before it is dead-lettered with 500 internal (3)
	ShutdownTimeout time.Duration // how long in-flight work may take after a stop signal (25s)
	// DecideTimeout bounds one attempt at deciding a batch (10s): a
	// PostgreSQL link that stays open but carries nothing is given up on,
	// as an outage, after it rather than after TCP's timeouts.
	DecideTimeout time.Duration
	Observer      Observer // told about outcomes, redeliveries and dead letters (none)
}

// Observer hears what the worker does, for metrics. Its methods must be
// cheap and safe for concurrent use.
type Observer interface {
	// Outcome: a command's outcome was published and JetStream acknowledged
	// it, then the command was acknowledged; latency after its batch started.
	Outcome(o domain.Outcome, latency time.Duration)
	// Redelivered: a command arrived for the second time or more.
	Redelivered()
	// DeadLetter: a command went to SIM_DEADLETTER.
	DeadLetter()
	// Unavailable: a dependency failed and the worker backs off (an outage,
	// or a schema or privilege problem that needs an operator).
	Unavailable()
	// AckFailed: JetStream did not take a command's acknowledgement or NAK.
	// The command will be redelivered and its stored outcome re-published.
	AckFailed()
}

type noObserver struct{}

func (noObserver) Outcome(domain.Outcome, time.Duration) {}
func (noObserver) Redelivered()                          {}
func (noObserver) DeadLetter()                           {}
func (noObserver) Unavailable()                          {}
func (noObserver) AckFailed()                            {}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.RetryWindow <= 0 {
		c.RetryWindow = 15 * time.Second
	}
	if c.PoisonRetries <= 0 {
		c.PoisonRetries = 3
	}
	if c.PoisonCrashes <= 0 {
		c.PoisonCrashes = 3
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.DecideTimeout <= 0 {
		c.DecideTimeout = 10 * time.Second
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	return c
}

// decideFunc decides the commands of a batch: one outcome per item, in
// order, or an error for all of them. The handler and the layers around it
// (retry.go, poison.go) share this shape.
type decideFunc func(ctx context.Context, its []*item) ([]domain.Outcome, error)

// Worker pulls commands from the durable consumer and turns each into exactly
// one published outcome.
type Worker struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
	h    Handler
	log  *zap.Logger
	cfg  Config

	decide decideFunc    // the handler inside its poison and outage layers
	naked  handedBack    // deliveries this worker handed back (crash.go)
	outage outageState   // the outage being waited out, if any (retry.go)
	stop   chan struct{} // closed when shutdown starts
	// eventsLimit is SIM_EVENTS' max_msg_size, for an event refused for its
	// size to be known before it is sent (ownfault.go).
	eventsLimit eventsLimit
	bound       atomic.Bool // consuming from the durable consumer
}

// Ready reports whether the worker is bound to its consumer and consuming.
func (w *Worker) Ready() bool { return w.bound.Load() }

// NewWorker returns a worker; Run starts it.
func NewWorker(js jetstream.JetStream, cons jetstream.Consumer, h Handler, log *zap.Logger, cfg Config) *Worker {
	cfg = cfg.withDefaults()
	// Keep messages alive against the consumer's real AckWait, which
	// operators may have tuned away from the configured one.
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 && info.Config.AckWait < cfg.AckWait {
		cfg.AckWait = info.Config.AckWait
	}
	w := &Worker{js: js, cons: cons, h: h, log: log, cfg: cfg, stop: make(chan struct{}), naked: handedBack{seqs: map[uint64]uint64{}}}
	// An outage is retried inside the poison layer, so that it never counts
	// as an unexpected failure.
	w.decide = w.isolatePoison(w.retryOutages(w.handle))
	return w
}
