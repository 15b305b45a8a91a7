package consumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"simworker/app"
	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/domain"
	"simworker/repo"
)

// refusingAcks is the durable consumer whose first n acknowledgements are
// refused, as JetStream refuses one when the connection drops under it.
type refusingAcks struct {
	jetstream.Consumer
	refuse atomic.Int32
}

func (c *refusingAcks) Consume(h jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return c.Consumer.Consume(func(m jetstream.Msg) { h(&refusedAck{Msg: m, c: c}) }, opts...)
}

type refusedAck struct {
	jetstream.Msg
	c *refusingAcks
}

func (m *refusedAck) Ack() error {
	if m.c.refuse.Add(-1) >= 0 {
		return errors.New("nats: connection closed (test)")
	}
	return m.Msg.Ack()
}

// counts is an Observer that counts what the tests look at.
type counts struct {
	outcomes, redelivered, ackFailed atomic.Int32
}

func (c *counts) Outcome(domain.Outcome, time.Duration) { c.outcomes.Add(1) }
func (c *counts) Redelivered()                          { c.redelivered.Add(1) }
func (c *counts) DeadLetter()                           {}
func (c *counts) Unavailable()                          {}
func (c *counts) AckFailed()                            { c.ackFailed.Add(1) }

// TestAckFailureIsCountedAndRedelivered: an acknowledgement JetStream did not
// take is logged with the command's id and position and counted; the command
// comes back after AckWait and its stored outcome is published again, the
// same event.
func TestAckFailureIsCountedAndRedelivered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	js, err := jetstream.New(consumertest.Connect(t, b.ns.URL))
	if err != nil {
		t.Fatal(err)
	}
	cons := &refusingAcks{Consumer: b.cons}
	cons.refuse.Store(1)
	core, logs := observer.New(zap.WarnLevel)
	obs := &counts{}
	w := consumer.NewWorker(js, cons, app.New(repo.New(b.pool), ""), zap.New(core), consumer.Config{Observer: obs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	b.command("c-ack", iccid(5))
	all := b.waitEvents(2) // published, then re-published on redelivery
	b.drained()
	if all[0].ID != all[1].ID || all[0].CommandID != "c-ack" {
		t.Fatalf("the redelivery published another event:\n%s\n%s", all[0].raw, all[1].raw)
	}
	if n := obs.ackFailed.Load(); n != 1 {
		t.Fatalf("AckFailed counted %d times, want 1", n)
	}
	if n := obs.redelivered.Load(); n != 1 {
		t.Fatalf("Redelivered counted %d times, want 1", n)
	}
	entries := logs.FilterMessage("acknowledgement not taken: the command will be redelivered").All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines about the refused ack, want 1: %v", len(entries), logs.All())
	}
	f := entries[0].ContextMap()
	if f["command_id"] != "c-ack" || f["stream_seq"] != uint64(1) || f["delivered"] != uint64(1) || f["verdict"] != "ack" {
		t.Fatalf("log fields %v", f)
	}
	if n := b.count(`SELECT count(*) FROM sims`); n != 1 {
		t.Fatalf("sims rows = %d", n)
	}
	if got := len(consumertest.StreamMessages(t, b.js, client.EventsStream)); got != 1 {
		t.Fatalf("SIM_EVENTS holds %d events, want 1 (the re-publish is de-duplicated)", got)
	}
}
