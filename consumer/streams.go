// Package consumer is the JetStream side of the worker: it creates the
// streams and the durable consumer when missing, pulls Create-SIM commands,
// hands them to a transport-free Handler, publishes each outcome event and
// acknowledges the command only once JetStream has acknowledged the event.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
)

// DurableName is the worker's durable consumer on SIM_COMMANDS, shared by
// every worker.
const DurableName = "simworker"

// StreamConfig sets the durability of both streams. The zero value is
// completed by defaults: file storage, 1 replica, a 2 minute duplicate window.
type StreamConfig struct {
	Replicas        int
	DuplicateWindow time.Duration
	AckWait         time.Duration // of the durable consumer; default 30s
	MaxAckPending   int           // of the durable consumer; default 10000
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 10000
	}
	return c
}

// Setup creates the SIM_COMMANDS, SIM_EVENTS and SIM_DEADLETTER streams and the durable pull
// consumer "simworker" when they are missing, and returns the consumer. Ones
// that exist are left exactly as they are: operators may have tuned them.
// Several workers may call it at once.
func Setup(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Consumer, error) {
	cfg = cfg.withDefaults()
	for _, sc := range []jetstream.StreamConfig{
		{Name: client.CommandsStream, Subjects: []string{client.CommandsSubject}, Description: "Create-SIM commands"},
		{Name: client.EventsStream, Subjects: []string{client.EventsSubject}, Description: "SIM outcome events (CloudEvents)"},
		{Name: client.DeadLetterStream, Subjects: []string{client.DeadLetterSubjects}, Description: "Create-SIM commands that failed unexpectedly (outcome 500 internal)"},
	} {
		sc.Storage = jetstream.FileStorage
		sc.Retention = jetstream.LimitsPolicy
		sc.Replicas = cfg.Replicas
		sc.Duplicates = cfg.DuplicateWindow
		if err := ensureStream(ctx, js, sc); err != nil {
			return nil, err
		}
	}
	cons, err := js.Consumer(ctx, client.CommandsStream, DurableName)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", DurableName, err)
	}
	cons, err = js.CreateConsumer(ctx, client.CommandsStream, jetstream.ConsumerConfig{
		Durable:       DurableName,
		Description:   "SIM worker: Create-SIM commands",
		FilterSubject: client.CreateSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Deliveries are never used up by an outage: the worker itself bounds
		// retries of unexpected failures and turns them into an outcome.
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
		Replicas:      cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return js.Consumer(ctx, client.CommandsStream, DurableName)
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", DurableName, err)
	}
	return cons, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	if _, err := js.Stream(ctx, sc.Name); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", sc.Name, err)
	}
	_, err := js.CreateStream(ctx, sc)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", sc.Name, err)
	}
	return nil
}
