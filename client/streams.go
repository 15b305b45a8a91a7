package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DurableName is the worker's durable consumer on SIM_COMMANDS, shared by
// every worker.
const DurableName = "simworker"

// StreamConfig sets the durability and the limits of the streams. The zero
// value is completed by defaults: file storage, 1 replica, a 2 minute
// duplicate window, and the limits of DefaultLimits.
type StreamConfig struct {
	Replicas        int
	DuplicateWindow time.Duration
	AckWait         time.Duration // of the durable consumer; default 30s
	MaxAckPending   int           // of the durable consumer; default 10000
	// Commands, Events and DeadLetter bound SIM_COMMANDS, SIM_EVENTS and
	// SIM_DEADLETTER; a zero field takes its DefaultLimits value.
	Commands, Events, DeadLetter Limits
}

// Limits bound a stream: messages older than MaxAge are deleted, and once
// it holds MaxBytes, Discard says what gives way. A negative MaxAge or
// MaxBytes is no limit; zero fields take the defaults.
type Limits struct {
	MaxAge   time.Duration
	MaxBytes int64
	Discard  jetstream.DiscardPolicy
	discard  bool // Discard was set (DiscardOld is the zero value)
}

// WithDiscard returns l with its discard policy set.
func (l Limits) WithDiscard(p jetstream.DiscardPolicy) Limits {
	l.Discard, l.discard = p, true
	return l
}

// DefaultLimits are the limits of the streams unless configured:
//   - SIM_COMMANDS keeps a command 7 days, decided or not (older ones can no
//     longer be replayed), with no byte limit: decided commands stay in the
//     stream (it is the replay log), so a byte limit would either refuse new
//     commands once it filled with decided ones (DiscardNew) or drop
//     commands not yet decided (DiscardOld). Full storage makes JetStream
//     refuse commands: publishers get an error, the API answers 503.
//   - SIM_EVENTS keeps an event 7 days and at most 1 GiB, dropping the
//     oldest when full (DiscardOld) so that outcomes keep flowing;
//     PostgreSQL keeps every outcome, and `simctl events republish` sends
//     any of them again.
//   - SIM_DEADLETTER keeps a dead letter 30 days and 256 MiB, dropping the
//     oldest; its 500 outcome stays in PostgreSQL.
var DefaultLimits = struct{ Commands, Events, DeadLetter Limits }{
	Commands:   Limits{MaxAge: 7 * 24 * time.Hour, MaxBytes: -1}.WithDiscard(jetstream.DiscardNew),
	Events:     Limits{MaxAge: 7 * 24 * time.Hour, MaxBytes: 1 << 30}.WithDiscard(jetstream.DiscardOld),
	DeadLetter: Limits{MaxAge: 30 * 24 * time.Hour, MaxBytes: 256 << 20}.WithDiscard(jetstream.DiscardOld),
}

func (l Limits) withDefaults(d Limits) Limits {
	if l.MaxAge == 0 {
		l.MaxAge = d.MaxAge
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if !l.discard {
		l.Discard = d.Discard
	}
	return l
}

// apply sets the limits on a stream's configuration, in JetStream's terms
// (0 max age and -1 max bytes are no limit).
func (l Limits) apply(sc *jetstream.StreamConfig) {
	sc.MaxAge, sc.MaxBytes, sc.Discard = max(l.MaxAge, 0), l.MaxBytes, l.Discard
	if l.MaxBytes < 0 {
		sc.MaxBytes = -1
	}
}

func (c StreamConfig) withDefaults() StreamConfig {
	c.Commands = c.Commands.withDefaults(DefaultLimits.Commands)
	c.Events = c.Events.withDefaults(DefaultLimits.Events)
	c.DeadLetter = c.DeadLetter.withDefaults(DefaultLimits.DeadLetter)
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
	for _, s := range []struct {
		sc     jetstream.StreamConfig
		limits Limits
	}{
		{jetstream.StreamConfig{Name: CommandsStream, Subjects: []string{CommandsSubject}, Description: "Create-SIM commands"}, cfg.Commands},
		{jetstream.StreamConfig{Name: EventsStream, Subjects: []string{EventsSubject}, Description: "SIM outcome events (CloudEvents)"}, cfg.Events},
		{jetstream.StreamConfig{Name: DeadLetterStream, Subjects: []string{DeadLetterSubjects}, Description: "Create-SIM commands that failed unexpectedly (outcome 500 internal)"}, cfg.DeadLetter},
	} {
		sc := s.sc
		sc.Storage = jetstream.FileStorage
		sc.Retention = jetstream.LimitsPolicy
		sc.Replicas = cfg.Replicas
		sc.Duplicates = cfg.DuplicateWindow
		s.limits.apply(&sc)
		if sc.MaxAge > 0 && sc.Duplicates > sc.MaxAge {
			sc.Duplicates = sc.MaxAge // JetStream refuses a window longer than the stream keeps messages
		}
		if err := ensureStream(ctx, js, sc); err != nil {
			return nil, err
		}
	}
	cons, err := js.Consumer(ctx, CommandsStream, DurableName)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", DurableName, err)
	}
	cons, err = js.CreateConsumer(ctx, CommandsStream, jetstream.ConsumerConfig{
		Durable:       DurableName,
		Description:   "SIM worker: Create-SIM commands",
		FilterSubject: CreateSubject,
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
		return js.Consumer(ctx, CommandsStream, DurableName)
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
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStorageResourcesExceeded {
		return fmt.Errorf("%w: create stream %s: its max bytes (%d) is more than the JetStream storage this server or account has left: "+
			"lower the stream's limit or raise the server's max_file_store (%v)", ErrNoStorage, sc.Name, sc.MaxBytes, err)
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", sc.Name, err)
	}
	return nil
}

// ErrNoStorage: a stream's max bytes is more than JetStream can reserve for
// it; a setting to change, not an outage.
var ErrNoStorage = errors.New("not enough JetStream storage for the stream's limit")

// errCodeStorageResourcesExceeded is nats-server's "insufficient storage
// resources available" (JSStorageResourcesExceededErr), which nats.go does
// not name.
const errCodeStorageResourcesExceeded jetstream.ErrorCode = 10047

// Unbounded names the streams of the worker that exist without any limit
// (created before limits, or edited since): they grow until the disk is
// full. The worker warns about each at start.
func Unbounded(ctx context.Context, js jetstream.JetStream) []string {
	var names []string
	for _, name := range []string{CommandsStream, EventsStream, DeadLetterStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		c := s.CachedInfo().Config
		if c.MaxAge == 0 && c.MaxBytes <= 0 && c.MaxMsgs <= 0 {
			names = append(names, name)
		}
	}
	return names
}
