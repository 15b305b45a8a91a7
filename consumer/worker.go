package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/client"
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
}

// Config tunes the worker. Zero fields take the defaults in parentheses.
type Config struct {
	Source          string        // CloudEvents source (simworker)
	BatchSize       int           // commands decided in one transaction at most (500)
	Concurrency     int           // batches in flight at once, each in its own transaction (2)
	AckWait         time.Duration // the consumer's AckWait: InProgress is sent every third of it (30s)
	MaxBackoff      time.Duration // cap of the wait between retries during an outage (30s)
	RetryWindow     time.Duration // how long a batch is retried in place before a delayed NAK (15s)
	PoisonRetries   int           // retries of an unexpected failure before 500 internal (3)
	ShutdownTimeout time.Duration // how long in-flight work may take after a stop signal (25s)
	Observer        Observer      // told about outcomes, redeliveries and dead letters (none)
}

// Observer hears what the worker does, for metrics. Its methods must be
// cheap and safe for concurrent use.
type Observer interface {
	// Outcome: a command's outcome was published and the command acknowledged,
	// latency after its batch started.
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
	if c.Source == "" {
		c.Source = domain.DefaultSource
	}
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
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	return c
}

// Worker pulls commands from the durable consumer and turns each into exactly
// one published outcome.
type Worker struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
	h    Handler
	log  *zap.Logger
	cfg  Config

	mu     sync.Mutex
	outage *backoff.ExponentialBackOff // shared by the batches in flight: an outage hits them all
	stop   chan struct{}               // closed when shutdown starts
	bound  atomic.Bool                 // consuming from the durable consumer
}

// Ready reports whether the worker is bound to its consumer and consuming.
func (w *Worker) Ready() bool { return w.bound.Load() }

func (w *Worker) nextBackoff() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outage.NextBackOff()
}

func (w *Worker) resetBackoff() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outage.Reset()
}

// NewWorker returns a worker; Run starts it.
func NewWorker(js jetstream.JetStream, cons jetstream.Consumer, h Handler, log *zap.Logger, cfg Config) *Worker {
	cfg = cfg.withDefaults()
	// Keep messages alive against the consumer's real AckWait, which
	// operators may have tuned away from the configured one.
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 && info.Config.AckWait < cfg.AckWait {
		cfg.AckWait = info.Config.AckWait
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = cfg.MaxBackoff
	b.MaxElapsedTime = 0 // an outage is waited out, never turned into an outcome
	return &Worker{js: js, cons: cons, h: h, log: log, cfg: cfg, outage: b, stop: make(chan struct{})}
}

// publishAckTimeout bounds the wait for JetStream to acknowledge an event.
const publishAckTimeout = 10 * time.Second

var errPubAckTimeout = errors.New("no publish acknowledgement within 10s")

// errStopping ends work on a batch when shutdown cuts it short; the batch is
// NAKed and redelivered, its outcome (if stored) re-published then.
var errStopping = errors.New("worker stopping")

// Run consumes until ctx is cancelled, then stops fetching, finishes the batch
// in flight (bounded by ShutdownTimeout), hands back what it had not started
// (NAK, so another worker takes it at once) and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	msgs := make(chan jetstream.Msg, w.cfg.BatchSize*w.cfg.Concurrency)
	cc, err := w.cons.Consume(func(m jetstream.Msg) {
		select {
		case <-w.stop:
			_ = m.Nak()
		case msgs <- m:
		}
	},
		jetstream.PullMaxMessages(2*w.cfg.BatchSize*w.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			w.log.Warn("consume", zap.Error(err))
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	w.bound.Store(true)
	defer w.bound.Store(false)

	// Work in flight gets its own context: a stop signal lets it finish,
	// bounded by ShutdownTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		w.bound.Store(false)
		close(w.stop)
		cc.Stop()
		select {
		case <-time.After(w.cfg.ShutdownTimeout):
			w.log.Warn("shutdown timeout: abandoning work in flight (it will be redelivered)")
			cancelWork()
		case <-workCtx.Done():
		}
	}()

	w.log.Info("worker started", zap.Int("batch_size", w.cfg.BatchSize), zap.Int("concurrency", w.cfg.Concurrency))
	// Batches go to at most Concurrency goroutines; taking a slot before
	// collecting a batch means a batch is cut from what is there when a slot
	// frees up, never held back waiting for one.
	slots := make(chan struct{}, w.cfg.Concurrency)
	var inflight sync.WaitGroup
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		var first jetstream.Msg
		select {
		case <-ctx.Done():
		case first = <-msgs:
		}
		if first == nil {
			<-slots
			break
		}
		batch := []jetstream.Msg{first}
	fill: // take what is already here, never wait to fill a batch
		for len(batch) < w.cfg.BatchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			w.process(workCtx, batch)
		}()
	}
	inflight.Wait()
	<-cc.Closed()
	for {
		select {
		case m := <-msgs:
			_ = m.Nak()
		default:
			cancelWork()
			w.log.Info("worker stopped")
			return nil
		}
	}
}

// item is one command message on its way through a batch.
type item struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	env     domain.Envelope
	outcome *domain.Outcome
	pos     string    // event id of a rejection without command id: from the original position (a replay carries it)
	at      time.Time // when the original command was stored
}

func (it *item) logFields() []zap.Field {
	f := []zap.Field{zap.String("command_id", it.env.CommandID)}
	if it.meta != nil {
		f = append(f, zap.Uint64("stream_seq", it.meta.Sequence.Stream), zap.Uint64("delivered", it.meta.NumDelivered))
	}
	return f
}

// process takes one batch from decode to acknowledgement.
func (w *Worker) process(ctx context.Context, batch []jetstream.Msg) {
	start := time.Now()
	items := make([]*item, len(batch))
	var envs []domain.Envelope
	var decided []*item
	for i, m := range batch {
		it := &item{msg: m, env: domain.ParseCommand(m.Data())}
		it.meta, _ = m.Metadata()
		if it.meta != nil && it.meta.NumDelivered > 1 {
			w.cfg.Observer.Redelivered()
		}
		it.pos, it.at = position(m, it.meta)
		items[i] = it
		if it.env.CommandID == "" {
			// No command id, no idempotency key: the event id derives from the
			// message's place in the stream, so a redelivery re-publishes the
			// very same event.
			o := domain.NewRejected(w.cfg.Source, it.pos, "", it.at, it.env.Reject)
			it.outcome = &o
			continue
		}
		envs = append(envs, it.env)
		decided = append(decided, it)
	}

	stopBeat := w.heartbeat(batch)
	defer stopBeat()

	if len(envs) > 0 {
		outs, err := w.decide(ctx, envs, decided)
		if err != nil {
			w.nakAll(batch, err)
			return
		}
		for i, it := range decided {
			o := outs[i]
			it.outcome = &o
		}
	}
	w.publishAndAck(ctx, items, start)
}

// decide gets outcomes for the envelopes, retrying outages in place and
// isolating an unexpected failure to the one command that causes it.
func (w *Worker) decide(ctx context.Context, envs []domain.Envelope, its []*item) ([]domain.Outcome, error) {
	outs, err := w.retryOutage(ctx, func() ([]domain.Outcome, error) { return w.safeHandle(ctx, envs) })
	if err == nil || errors.Is(err, errStopping) || errors.Is(err, domain.ErrUnavailable) {
		return outs, err
	}
	if len(envs) > 1 {
		w.log.Warn("batch failed unexpectedly: deciding its commands one by one", zap.Int("size", len(envs)), zap.Error(err))
		outs = make([]domain.Outcome, 0, len(envs))
		for i := range envs {
			o, err := w.decide(ctx, envs[i:i+1], its[i:i+1])
			if err != nil {
				return nil, err
			}
			outs = append(outs, o...)
		}
		return outs, nil
	}
	// One command that fails unexpectedly: retry a bounded number of times,
	// then give it a 500 internal outcome so it never blocks those behind it.
	log := w.log.With(its[0].logFields()...)
	for attempt := 1; ; attempt++ {
		log.Warn("command failed unexpectedly", zap.Int("attempt", attempt), zap.Error(err))
		if attempt > w.cfg.PoisonRetries {
			break
		}
		if !w.sleep(ctx, time.Duration(attempt)*200*time.Millisecond) {
			return nil, errStopping
		}
		outs, err = w.retryOutage(ctx, func() ([]domain.Outcome, error) { return w.safeHandle(ctx, envs) })
		if err == nil || errors.Is(err, errStopping) || errors.Is(err, domain.ErrUnavailable) {
			return outs, err
		}
	}
	cause := err.Error()
	log.Error("command is poison: dead-lettering it and recording 500 internal", zap.String("cause", cause))
	// The dead letter goes first: if the worker dies before the 500 is stored,
	// the redelivery repeats both (the dead letter is de-duplicated by id).
	if _, err := w.retryOutage(ctx, func() ([]domain.Outcome, error) {
		return nil, w.deadLetter(ctx, its[0], cause)
	}); err != nil {
		return nil, err
	}
	internal := []domain.Envelope{domain.InternalEnvelope(envs[0].CommandID)}
	return w.retryOutage(ctx, func() ([]domain.Outcome, error) { return w.safeHandle(ctx, internal) })
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

// safeHandle calls the handler, turning a panic into an unexpected error.
func (w *Worker) safeHandle(ctx context.Context, envs []domain.Envelope) (outs []domain.Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	outs, err = w.h.Handle(ctx, envs)
	if err == nil && len(outs) != len(envs) {
		err = fmt.Errorf("handler returned %d outcomes for %d commands", len(outs), len(envs))
	}
	return outs, err
}

// retryOutage calls f until it succeeds or fails with something other than
// an outage. During an outage it backs off (shared, capped exponential
// backoff) for at most RetryWindow, then gives up with the outage error so the
// batch is NAKed with a delay. Shutdown ends the wait with errStopping.
func (w *Worker) retryOutage(ctx context.Context, f func() ([]domain.Outcome, error)) ([]domain.Outcome, error) {
	start := time.Now()
	for {
		outs, err := f()
		if err == nil {
			w.resetBackoff()
			return outs, nil
		}
		if ctx.Err() != nil {
			return nil, errStopping
		}
		if !errors.Is(err, domain.ErrUnavailable) {
			return nil, err
		}
		wait := w.nextBackoff()
		w.log.Warn("dependency unavailable: backing off", zap.Duration("retry_in", wait), zap.Error(err))
		w.cfg.Observer.Unavailable()
		if time.Since(start)+wait > w.cfg.RetryWindow {
			return nil, err
		}
		if !w.sleep(ctx, wait) {
			return nil, errStopping
		}
	}
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

// heartbeat keeps the batch's messages from being redelivered while work on
// them goes on longer than AckWait.
func (w *Worker) heartbeat(batch []jetstream.Msg) func() {
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
				for _, m := range batch {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// nakAll hands the batch back: after a delay during an outage, at once when
// stopping.
func (w *Worker) nakAll(batch []jetstream.Msg, err error) {
	delay := time.Duration(0)
	if !errors.Is(err, errStopping) {
		delay = w.nextBackoff()
		w.log.Warn("outage outlasted the retry window: NAK with delay", zap.Int("size", len(batch)),
			zap.Duration("delay", delay), zap.Error(err))
	}
	for _, m := range batch {
		_ = m.NakWithDelay(delay)
	}
}

// publishAndAck publishes every outcome and waits for JetStream's
// acknowledgements, then acknowledges the commands whose outcome is safely in
// SIM_EVENTS. A command whose event could not be published is NAKed: its
// outcome is stored, so its redelivery re-publishes the same event.
func (w *Worker) publishAndAck(ctx context.Context, items []*item, batchStart time.Time) {
	pending := items
	start := time.Now()
	for len(pending) > 0 {
		ackTimeout := time.NewTimer(publishAckTimeout)
		futures := make([]jetstream.PubAckFuture, len(pending))
		errs := make([]error, len(pending))
		for i, it := range pending {
			futures[i], errs[i] = w.js.PublishMsgAsync(client.EventMsg(*it.outcome), jetstream.WithExpectStream(client.EventsStream))
		}
		var failed []*item
		var lastErr error
		for i, it := range pending {
			if errs[i] == nil {
				select {
				case <-futures[i].Ok():
				case errs[i] = <-futures[i].Err():
				case <-ackTimeout.C:
					// A lost acknowledgement (a stream leader that died before
					// answering) must not hold the batch forever.
					errs[i] = errPubAckTimeout
					ackTimeout.Reset(0)
				case <-ctx.Done():
					errs[i] = errStopping
				}
			}
			if errs[i] != nil {
				failed, lastErr = append(failed, it), errs[i]
				continue
			}
			w.logOutcome(it)
			_ = it.msg.Ack()
			w.cfg.Observer.Outcome(*it.outcome, time.Since(batchStart))
		}
		ackTimeout.Stop()
		if len(failed) == 0 {
			w.resetBackoff()
			return
		}
		pending = failed
		wait := w.nextBackoff()
		w.cfg.Observer.Unavailable()
		w.log.Warn("publishing outcomes failed: backing off", zap.Int("count", len(failed)),
			zap.Duration("retry_in", wait), zap.Error(lastErr))
		if errors.Is(lastErr, errStopping) || time.Since(start)+wait > w.cfg.RetryWindow || !w.sleep(ctx, wait) {
			msgs := make([]jetstream.Msg, len(failed))
			for i, it := range failed {
				msgs[i] = it.msg
			}
			if !errors.Is(lastErr, errStopping) {
				lastErr = fmt.Errorf("%w: nats: %v", domain.ErrUnavailable, lastErr)
			}
			w.nakAll(msgs, lastErr)
			return
		}
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
