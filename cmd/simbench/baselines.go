package main

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"simworker/app"
	"simworker/client"
	"simworker/domain"
	"simworker/repo"
)

// rawJetStream publishes the commands to a scratch stream asynchronously,
// then consumes and acks them in batches.
func (b *bench) rawJetStream(ctx context.Context, cmds []command) (float64, float64, error) {
	b.logf("raw JetStream")
	_ = b.js.DeleteStream(ctx, "BENCH_RAW")
	s, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, 0, err
	}
	defer b.js.DeleteStream(ctx, "BENCH_RAW")
	start := time.Now()
	for _, c := range cmds {
		if _, err := b.js.PublishAsync("bench.raw", c.body, jetstream.WithMsgID(c.id)); err != nil {
			return 0, 0, err
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("raw publish did not complete")
	}
	pub := float64(len(cmds)) / time.Since(start).Seconds()
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	got := 0
	for got < len(cmds) {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, 0, err
		}
		for m := range batch.Messages() {
			_ = m.Ack()
			got++
		}
		if batch.Error() != nil {
			return 0, 0, batch.Error()
		}
	}
	return pub, float64(len(cmds)) / time.Since(start).Seconds(), nil
}

// rawPostgres stores, for each valid command, a SIM row and an outcome row
// of about 1 KB with COPY and no decision (writeRows, as the pass-through
// worker), 500 per transaction over 4 connections: what PostgreSQL alone
// can take.
func (b *bench) rawPostgres(ctx context.Context, cmds []command) (float64, error) {
	b.logf("raw PostgreSQL")
	_, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	event := bytes.Repeat([]byte("x"), 900)
	var sims []domain.Sim
	var outs []domain.Outcome
	for i, c := range cmds {
		env := domain.ParseCommand(c.body)
		if env.Reject != nil {
			continue
		}
		in := env.Command.Sim
		s := domain.Sim{ID: newUUID(), CompanyID: "co-site-1", DeviceID: in.DeviceID, ICCID: fmt.Sprintf("99%017d", i), // distinct: every row is stored
			MSISDN: in.MSISDN, Status: in.Status, RatePlan: in.RatePlan, CommunicationPlan: in.CommunicationPlan, SimMetadata: in.SimMetadata,
			CreatedAt: now, CreatedBy: env.Command.ActorID, UpdatedAt: now, UpdatedBy: env.Command.ActorID}
		sims = append(sims, s)
		outs = append(outs, domain.Outcome{CommandID: "raw-" + s.ID, EventID: newUUID(), Type: domain.TypeCreated, Status: 201, SimID: s.ID, Event: event})
	}
	var next atomic.Int64
	start := time.Now()
	var g errgroup.Group
	for range 4 {
		g.Go(func() error {
			for {
				lo := int(next.Add(500)) - 500
				if lo >= len(sims) {
					return nil
				}
				hi := min(lo+500, len(sims))
				if err := writeRows(ctx, pool, sims[lo:hi], outs[lo:hi]); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return float64(len(sims)) / time.Since(start).Seconds(), nil
}

// naive decides one command per transaction and publishes its outcome
// synchronously before acknowledging: the design the worker improves on.
func (b *bench) naive(ctx context.Context, cmds []command) (float64, error) {
	b.logf("naive baseline over %d commands", len(cmds))
	_, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return 0, err
	}
	store := app.New(repo.New(pool), "")
	for _, c := range cmds {
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			return 0, err
		}
	}
	<-b.js.PublishAsyncComplete()
	cons, err := b.js.Consumer(ctx, client.CommandsStream, client.DurableName)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for done := 0; done < len(cmds); {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return 0, err
		}
		env := domain.ParseCommand(m.Data())
		var o domain.Outcome
		if env.CommandID == "" {
			o = domain.NewRejected("simworker", newUUID(), "", time.Now(), env.Reject)
		} else {
			outs, err := store.Handle(ctx, []domain.Envelope{env}) // the worker's own path, one command at a time
			if err != nil {
				return 0, err
			}
			o = outs[0]
		}
		if _, err := b.js.Publish(ctx, client.SubjectOf(o), o.Event, jetstream.WithMsgID(o.EventID)); err != nil {
			return 0, err
		}
		if err := m.Ack(); err != nil {
			return 0, err
		}
		done++
	}
	return float64(len(cmds)) / time.Since(start).Seconds(), nil
}

func newUUID() string { return uuid.Must(uuid.NewV7()).String() }
