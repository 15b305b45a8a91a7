package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/domain"
	"simworker/repo"
)

// The pass-through worker does the least any correct worker must, and
// nothing else: it takes each command from the durable consumer, decodes it
// (with the worker's own decoder), writes its SIM row and its outcome row
// (the event, about 1 KB) with COPY in one transaction per batch under
// PostgreSQL's durable defaults, publishes the event, waits for JetStream's
// acknowledgement and acknowledges the command. No checks (device,
// permission, MNO integration), no idempotency look-up, no tracing, no
// crash accounting. Batches of 500, two in flight, as the worker's
// defaults. What the real worker reaches of its rate is the share of the
// machine its rules cost; `simbench -passthrough-worker` runs it as a
// process of its own, with NATS_URL and DATABASE_URL.
func passThrough() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pool, err := repo.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := repo.Migrate(ctx, pool); err != nil {
		return err
	}
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := client.Setup(ctx, js, client.StreamConfig{})
	if err != nil {
		return err
	}
	const batchSize, inFlight = 500, 2
	msgs := make(chan jetstream.Msg, batchSize*inFlight)
	cc, err := cons.Consume(func(m jetstream.Msg) { msgs <- m }, jetstream.PullMaxMessages(2*batchSize*inFlight))
	if err != nil {
		return err
	}
	defer cc.Stop()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var batch []jetstream.Msg
				select {
				case <-ctx.Done():
					return
				case m := <-msgs:
					batch = append(batch, m)
				}
			fill:
				for len(batch) < batchSize {
					select {
					case m := <-msgs:
						batch = append(batch, m)
					default:
						break fill
					}
				}
				if err := passBatch(ctx, js, pool, batch); err != nil && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "pass-through:", err)
					for _, m := range batch {
						_ = m.Nak()
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// passBatch stores, publishes and acknowledges one batch: each SIM made
// here (no RETURNING), both tables written with COPY in one transaction.
func passBatch(ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, batch []jetstream.Msg) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	sims := make([]domain.Sim, 0, len(batch))
	outs := make([]domain.Outcome, 0, len(batch))
	acks := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		env := domain.ParseCommand(m.Data())
		if env.Reject != nil { // the measured workloads are valid commands only
			_ = m.Ack()
			continue
		}
		in := env.Command.Sim
		sim := domain.Sim{ID: newUUID(), CompanyID: "co-passthrough", DeviceID: in.DeviceID, MNOIntegrationID: in.MNOIntegrationID,
			ICCID: in.ICCID, MSISDN: in.MSISDN, Status: in.Status, CommunicationPlan: in.CommunicationPlan, RatePlan: in.RatePlan,
			SimMetadata: in.SimMetadata, CreatedAt: now, CreatedBy: env.Command.ActorID, UpdatedAt: now, UpdatedBy: env.Command.ActorID}
		o, err := domain.NewCreated(domain.DefaultSource, newUUID(), env.CommandID, sim)
		if err != nil {
			return err
		}
		sims, outs, acks = append(sims, sim), append(outs, o), append(acks, m)
	}
	if err := writeRows(ctx, pool, sims, outs); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, len(outs))
	for i, o := range outs {
		var err error
		if futures[i], err = client.PublishOutcome(js, o); err != nil {
			return err
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, m := range acks {
		_ = m.Ack()
	}
	return nil
}

// writeRows writes SIM rows and outcome rows with COPY in one transaction:
// the least PostgreSQL can be asked to do for them (the pass-through worker,
// and the raw PostgreSQL limit).
func writeRows(ctx context.Context, pool *pgxpool.Pool, sims []domain.Sim, outs []domain.Outcome) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		simRow := make([]any, 14)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sims"}, []string{"id", "company_id", "device_id", "mno_integration_id", "iccid",
			"msisdn", "status", "communication_plan", "rate_plan", "sim_metadata", "created_at", "created_by", "updated_at", "updated_by"},
			pgx.CopyFromSlice(len(sims), func(k int) ([]any, error) {
				s := &sims[k]
				simRow[0], simRow[1], simRow[2], simRow[3], simRow[4] = uuidOf(s.ID), s.CompanyID, s.DeviceID, s.MNOIntegrationID, s.ICCID
				simRow[5], simRow[6], simRow[7], simRow[8], simRow[9] = s.MSISDN, s.Status, s.CommunicationPlan, s.RatePlan, []byte(s.SimMetadata)
				simRow[10], simRow[11], simRow[12], simRow[13] = s.CreatedAt, s.CreatedBy, s.UpdatedAt, s.UpdatedBy
				return simRow, nil
			})); err != nil {
			return err
		}
		outRow := make([]any, 7)
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"processed_commands"},
			[]string{"command_id", "event_id", "event_type", "status", "code", "sim_id", "event"},
			pgx.CopyFromSlice(len(outs), func(k int) ([]any, error) {
				o := &outs[k]
				outRow[0], outRow[1], outRow[2], outRow[3], outRow[4], outRow[5], outRow[6] = o.CommandID, uuidOf(o.EventID), o.Type, int32(o.Status), nil, uuidOf(o.SimID), o.Event
				return outRow, nil
			}))
		return err
	})
}

func uuidOf(s string) pgtype.UUID {
	u, err := uuid.Parse(s)
	return pgtype.UUID{Bytes: u, Valid: err == nil}
}
