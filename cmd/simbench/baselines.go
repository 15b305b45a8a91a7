package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
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

// rawPostgres inserts, for each command, a SIM row and a processed-command
// row of the same shape the worker writes, 500 per transaction over 4
// connections: what PostgreSQL alone can take.
func (b *bench) rawPostgres(ctx context.Context, cmds []command) (float64, error) {
	b.logf("raw PostgreSQL")
	_, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	event := make([]byte, 900)
	for i := range event {
		event[i] = 'x'
	}
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(500)) - 500
				if lo >= len(cmds) {
					return
				}
				hi := min(lo+500, len(cmds))
				n := hi - lo
				ids, iccids, cids := make([]string, n), make([]string, n), make([]string, n)
				evs := make([][]byte, n)
				for k := 0; k < n; k++ {
					ids[k], iccids[k], cids[k], evs[k] = newUUID(), fmt.Sprintf("99%017d", lo+k), cmds[lo+k].id, event
				}
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `
						INSERT INTO sims (id, company_id, device_id, iccid, msisdn, status, rate_plan, communication_plan, sim_metadata,
						                  created_at, created_by, updated_at, updated_by)
						SELECT id, 'co-site-1', 'd-1', iccid, '4915100000000', 'active', 'Flex 1GB', 'IoT EU',
						       '{"batch":"2026-11","order":12345678901234567890,"tags":["bulk","eu"]}'::jsonb, now(), 'u-1', now(), 'u-1'
						FROM unnest($1::uuid[], $2::text[]) AS t(id, iccid)
						ON CONFLICT ON CONSTRAINT sims_iccid_key DO NOTHING`, ids, iccids); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `
						INSERT INTO processed_commands (command_id, event_id, event_type, status, sim_id, event)
						SELECT cid, gen_random_uuid(), 'sim.created', 201, id, ev FROM unnest($1::text[], $2::uuid[], $3::bytea[]) AS t(cid, id, ev)
						ON CONFLICT DO NOTHING`, cids, ids, evs)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(len(cmds)) / time.Since(start).Seconds(), nil
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
	store := repo.NewStore(pool, "")
	for _, c := range cmds {
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			return 0, err
		}
	}
	<-b.js.PublishAsyncComplete()
	cons, err := b.js.Consumer(ctx, client.CommandsStream, consumer.DurableName)
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
		if _, err := b.js.Publish(ctx, o.PublishSubject(), o.Event, jetstream.WithMsgID(o.EventID)); err != nil {
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
