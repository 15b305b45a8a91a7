package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Run consumes until ctx is cancelled, then stops fetching, finishes the batch
// in flight (bounded by ShutdownTimeout), hands back what it had not started
// (NAK, so another worker takes it at once) and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	w.eventsLimit.load(ctx, w.js)
	msgs := make(chan jetstream.Msg, w.cfg.BatchSize*w.cfg.Concurrency)
	cc, err := w.consume(msgs)
	if err != nil {
		return err
	}
	w.bound.Store(true)
	defer w.bound.Store(false)

	workCtx, cancelWork := w.onShutdown(ctx, cc)
	defer cancelWork()

	w.log.Info("worker started", zap.Int("batch_size", w.cfg.BatchSize), zap.Int("concurrency", w.cfg.Concurrency))
	w.dispatch(ctx, workCtx, msgs)
	<-cc.Closed()
	for {
		select {
		case m := <-msgs:
			w.settle(newItem(m), nakNow)
		default:
			cancelWork()
			w.log.Info("worker stopped")
			return nil
		}
	}
}

// consume starts pulling from the durable consumer into msgs. Once shutdown
// has started, what still arrives is handed back at once.
func (w *Worker) consume(msgs chan<- jetstream.Msg) (jetstream.ConsumeContext, error) {
	cc, err := w.cons.Consume(func(m jetstream.Msg) {
		select {
		case <-w.stop:
			w.settle(newItem(m), nakNow)
		case msgs <- m:
		}
	},
		jetstream.PullMaxMessages(2*w.cfg.BatchSize*w.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			w.log.Warn("consume", zap.Error(err))
		}))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	return cc, nil
}

// onShutdown returns the context of the work in flight: a stop signal (ctx
// done) stops fetching and lets that work finish, bounded by
// ShutdownTimeout, after which its context is cancelled.
func (w *Worker) onShutdown(ctx context.Context, cc jetstream.ConsumeContext) (context.Context, context.CancelFunc) {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
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
	return workCtx, cancelWork
}

// dispatch hands batches to at most Concurrency goroutines until ctx is
// done, then waits for those in flight. Taking a slot before collecting a
// batch means a batch is cut from what is there when a slot frees up, never
// held back waiting for one.
func (w *Worker) dispatch(ctx, workCtx context.Context, msgs <-chan jetstream.Msg) {
	slots := make(chan struct{}, w.cfg.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			return
		}
		batch := w.nextBatch(ctx, msgs)
		if batch == nil {
			<-slots
			return
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			w.process(workCtx, batch)
		}()
	}
}

// nextBatch waits for a first message, then takes what is already there, up
// to BatchSize, never waiting to fill the batch; nil when ctx is done first.
func (w *Worker) nextBatch(ctx context.Context, msgs <-chan jetstream.Msg) []jetstream.Msg {
	var first jetstream.Msg
	select {
	case <-ctx.Done():
		return nil
	case first = <-msgs:
	}
	batch := []jetstream.Msg{first}
	for len(batch) < w.cfg.BatchSize {
		select {
		case m := <-msgs:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}
