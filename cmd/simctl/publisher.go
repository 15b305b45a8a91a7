package main

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/domain"
)

// publisher publishes asynchronously with a bounded number in flight and
// settles each row whose publish JetStream refused.
type publisher struct {
	js       jetstream.JetStream
	t        *tracker
	inflight chan struct{}
	wg       sync.WaitGroup
	prog     *progress
}

func newPublisher(js jetstream.JetStream, t *tracker, maxInflight int, prog *progress) *publisher {
	return &publisher{js: js, t: t, inflight: make(chan struct{}, maxInflight), prog: prog}
}

func (p *publisher) publish(ctx context.Context, r *row, msg *nats.Msg) {
	p.send(ctx, r, false, func() (jetstream.PubAckFuture, error) {
		return p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(client.CommandsStream))
	})
}

// publishOutcome re-emits a stored outcome; a refusal turns its row into
// publish_failed.
func (p *publisher) publishOutcome(ctx context.Context, r *row, o domain.Outcome) {
	p.send(ctx, r, true, func() (jetstream.PubAckFuture, error) { return client.PublishOutcome(p.js, o) })
}

// send publishes with at most maxInflight awaiting their acknowledgement and
// settles the row when JetStream refuses (force: even a row that has its
// outcome already).
func (p *publisher) send(ctx context.Context, r *row, force bool, publish func() (jetstream.PubAckFuture, error)) {
	select {
	case p.inflight <- struct{}{}:
	case <-ctx.Done():
		p.t.fail(r, "interrupted", force)
		return
	}
	f, err := publish()
	if err != nil {
		<-p.inflight
		p.t.fail(r, err.Error(), force)
		p.prog.add(1)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.inflight }()
		select {
		case <-f.Ok():
		case err := <-f.Err():
			p.t.fail(r, err.Error(), force)
		case <-ctx.Done():
			p.t.fail(r, "interrupted", force)
		}
		p.prog.add(1)
	}()
}

func (p *publisher) wait() { p.wg.Wait() }
