package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/app"
	"simworker/client"
	"simworker/cmd/internal/cli"
	"simworker/cmd/internal/ops"
	"simworker/consumer"
	"simworker/domain"
	"simworker/repo"
)

// workerConfig are the worker's settings, shared by run and dev.
type workerConfig struct {
	Source          string        `env:"SIM_SOURCE" envDefault:"simworker" flag:"source" help:"CloudEvents source attribute of published events"`
	BatchSize       int           `env:"SIM_BATCH_SIZE" envDefault:"500" flag:"batch-size" help:"most commands decided in one transaction, at most 10000 (a batch never waits to fill)"`
	Concurrency     int           `env:"SIM_CONCURRENCY" envDefault:"2" flag:"concurrency" help:"batches decided at once, each in its own transaction"`
	AckWait         time.Duration `env:"SIM_ACK_WAIT" envDefault:"30s" flag:"ack-wait" help:"AckWait of the durable consumer when the worker creates it; in-flight work is kept alive every third of it"`
	MaxBackoff      time.Duration `env:"SIM_MAX_BACKOFF" envDefault:"30s" flag:"max-backoff" help:"cap of the wait between retries while NATS or PostgreSQL is down"`
	RetryWindow     time.Duration `env:"SIM_RETRY_WINDOW" envDefault:"15s" flag:"retry-window" help:"how long a batch is retried in place during an outage before it is NAKed with a delay"`
	PoisonRetries   int           `env:"SIM_POISON_RETRIES" envDefault:"3" flag:"poison-retries" help:"retries of a command that fails unexpectedly (not an outage) before it gets a 500 internal outcome"`
	PoisonCrashes   int           `env:"SIM_POISON_CRASHES" envDefault:"3" flag:"poison-crashes" help:"attempts at a command that killed the worker (counted in PostgreSQL across restarts) before it is dead-lettered with a 500 internal outcome"`
	DBTimeout       time.Duration `env:"SIM_DB_TIMEOUT" envDefault:"10s" flag:"db-timeout" help:"longest one attempt at deciding a batch may wait on PostgreSQL before it is abandoned and retried (a silent link is noticed within it)"`
	ShutdownTimeout time.Duration `env:"SIM_SHUTDOWN_TIMEOUT" envDefault:"25s" flag:"shutdown-timeout" help:"how long work in flight may take after SIGINT/SIGTERM"`
	StreamReplicas  int           `env:"SIM_STREAM_REPLICAS" envDefault:"1" flag:"stream-replicas" help:"replicas of the streams and consumer when the worker creates them (3 on a cluster)"`
	DuplicateWindow time.Duration `env:"SIM_DUPLICATE_WINDOW" envDefault:"2m" flag:"duplicate-window" help:"JetStream duplicate window of the streams when the worker creates them"`
	LogLevel        string        `env:"SIM_LOG_LEVEL" envDefault:"info" flag:"log-level" help:"debug, info, warn or error"`

	// The streams' limits when the worker creates them; 0 is no limit.
	CommandsMaxAge     time.Duration `env:"SIM_COMMANDS_MAX_AGE" envDefault:"168h" flag:"commands-max-age" help:"SIM_COMMANDS deletes commands older than this, decided or not (they can no longer be replayed); 0: kept forever"`
	CommandsMaxBytes   cli.Bytes     `env:"SIM_COMMANDS_MAX_BYTES" envDefault:"0" flag:"commands-max-bytes" help:"most bytes SIM_COMMANDS holds (e.g. 10GiB); 0: no limit (decided commands stay until their max age)"`
	CommandsDiscard    string        `env:"SIM_COMMANDS_DISCARD" envDefault:"new" flag:"commands-discard" help:"when SIM_COMMANDS holds its max bytes: new refuses new commands (publishers get an error, the API 503); old drops the oldest, decided or not (a command not yet decided is lost)"`
	EventsMaxAge       time.Duration `env:"SIM_EVENTS_MAX_AGE" envDefault:"168h" flag:"events-max-age" help:"SIM_EVENTS deletes events older than this (PostgreSQL keeps every outcome); 0: kept forever"`
	EventsMaxBytes     cli.Bytes     `env:"SIM_EVENTS_MAX_BYTES" envDefault:"1GiB" flag:"events-max-bytes" help:"most bytes SIM_EVENTS holds; 0: no limit"`
	EventsDiscard      string        `env:"SIM_EVENTS_DISCARD" envDefault:"old" flag:"events-discard" help:"when SIM_EVENTS is full: old drops the oldest events; new refuses new ones and the worker waits"`
	DeadLetterMaxAge   time.Duration `env:"SIM_DEADLETTER_MAX_AGE" envDefault:"720h" flag:"deadletter-max-age" help:"SIM_DEADLETTER deletes dead letters older than this; 0: kept forever"`
	DeadLetterMaxBytes cli.Bytes     `env:"SIM_DEADLETTER_MAX_BYTES" envDefault:"256MiB" flag:"deadletter-max-bytes" help:"most bytes SIM_DEADLETTER holds; 0: no limit"`
	DeadLetterDiscard  string        `env:"SIM_DEADLETTER_DISCARD" envDefault:"old" flag:"deadletter-discard" help:"when SIM_DEADLETTER is full: old drops the oldest; new refuses new ones and the worker waits"`
}

// Validate checks the ranges consumer.Config and the streams accept.
func (w *workerConfig) Validate(c *cli.Check) {
	c.Range(&w.BatchSize, 1, 10000)
	c.Positive(&w.Concurrency, &w.PoisonRetries, &w.PoisonCrashes, &w.StreamReplicas)
	c.NotNegative(&w.AckWait, &w.MaxBackoff, &w.RetryWindow, &w.ShutdownTimeout, &w.DuplicateWindow, &w.DBTimeout)
	c.OneOf(&w.LogLevel, "debug", "info", "warn", "error")
	c.NotNegative(&w.CommandsMaxAge, &w.EventsMaxAge, &w.DeadLetterMaxAge)
	for _, d := range []*string{&w.CommandsDiscard, &w.EventsDiscard, &w.DeadLetterDiscard} {
		c.OneOf(d, "new", "old")
	}
}

// limits is a stream's limits in the consumer's terms: 0 here is no limit.
func limits(age time.Duration, bytes cli.Bytes, discard string) client.Limits {
	l := client.Limits{MaxAge: age, MaxBytes: int64(bytes)}
	if age == 0 {
		l.MaxAge = -1
	}
	if bytes == 0 {
		l.MaxBytes = -1
	}
	if discard == "new" {
		return l.WithDiscard(jetstream.DiscardNew)
	}
	return l.WithDiscard(jetstream.DiscardOld)
}

// configs are the worker's and the streams' configurations: the one place
// the settings become them.
func (w *workerConfig) configs() (consumer.Config, client.StreamConfig) {
	return consumer.Config{
			BatchSize:       w.BatchSize,
			Concurrency:     w.Concurrency,
			AckWait:         w.AckWait,
			MaxBackoff:      w.MaxBackoff,
			RetryWindow:     w.RetryWindow,
			PoisonRetries:   w.PoisonRetries,
			PoisonCrashes:   w.PoisonCrashes,
			ShutdownTimeout: w.ShutdownTimeout,
			DecideTimeout:   w.DBTimeout,
		}, client.StreamConfig{
			Replicas:        w.StreamReplicas,
			DuplicateWindow: w.DuplicateWindow,
			AckWait:         w.AckWait,
			Commands:        limits(w.CommandsMaxAge, w.CommandsMaxBytes, w.CommandsDiscard),
			Events:          limits(w.EventsMaxAge, w.EventsMaxBytes, w.EventsDiscard),
			DeadLetter:      limits(w.DeadLetterMaxAge, w.DeadLetterMaxBytes, w.DeadLetterDiscard),
		}
}

// runConfig is the configuration of simworker run.
type runConfig struct {
	NATS     cli.NATS
	Database cli.Database
	Worker   workerConfig
	HTTPAddr string `env:"SIM_HTTP_ADDR" envDefault:":8080" flag:"http-addr" help:"address of /healthz, /readyz and /metrics (host:port; port 0 picks a free one; 'off' disables)"`
}

func runCmd(ctx context.Context, cfg *runConfig, _ []string, _, stderr io.Writer) error {
	st, err := start(ctx, cfg, cfg.Worker.LogLevel, "simworker", false, stderr)
	if err != nil {
		return err
	}
	defer st.stop()
	log := st.log
	pool, err := repo.Open(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, err := cfg.NATS.Connect("simworker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	return work(ctx, log, nc, pool, &cfg.Worker, cfg.HTTPAddr, nil)
}

// startupAttempt bounds one attempt at migrating and setting the streams
// up, so a dependency that does not answer is reported and retried.
const startupAttempt = 10 * time.Second

// awaitNATS gives the connection a moment to come up, then names the server
// it cannot reach and why.
func awaitNATS(ctx context.Context, nc *nats.Conn) error {
	for deadline := time.Now().Add(2 * time.Second); !nc.IsConnected(); {
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := "no answer"
			if err := nc.LastError(); err != nil {
				why = err.Error()
			}
			return fmt.Errorf("%w: cannot connect to NATS at %s (%s): %s", domain.ErrUnavailable, natsShown(nc), nc.Status(), why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// natsShown is the URL a connection tries, without a password or token.
func natsShown(nc *nats.Conn) string {
	if u := nc.ConnectedUrlRedacted(); u != "" {
		return u
	}
	var shown []string
	for _, s := range nc.Servers() {
		shown = append(shown, cli.NATS{URL: s}.Shown())
	}
	return strings.Join(shown, ",")
}

// work migrates, sets the streams up and runs the worker until ctx ends.
// Dependencies that are down at start are waited for with backoff. started,
// when not nil, is called once the worker is about to consume, with the
// address of its health and metrics endpoint ("" when off).
func work(ctx context.Context, log *zap.Logger, nc *nats.Conn, pool *pgxpool.Pool, cfg *workerConfig,
	httpAddr string, started func(opsAddr string)) error {
	wcfg, scfg := cfg.configs()
	// The async publish window holds every batch in flight; an
	// acknowledgement that never comes fails after a bound.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(4000, 2*wcfg.BatchSize*wcfg.Concurrency)),
		jetstream.WithPublishAsyncTimeout(15*time.Second))
	if err != nil {
		return err
	}
	// Probes and metrics come up first: alive (and not ready) while the
	// dependencies are still awaited.
	var worker atomic.Pointer[consumer.Worker]
	opsAddr := ""
	if httpAddr != "off" {
		srv := ops.New(nc, js, pool, func() bool { w := worker.Load(); return w != nil && w.Ready() })
		srv.BackingOff = func() (time.Time, error) {
			if w := worker.Load(); w != nil {
				return w.BackingOff()
			}
			return time.Time{}, nil
		}
		if err := srv.Start(httpAddr, log); err != nil {
			return fmt.Errorf("SIM_HTTP_ADDR %s: %w", httpAddr, err)
		}
		defer srv.Stop()
		wcfg.Observer, opsAddr = srv.Metrics, srv.Addr
	}
	var cons jetstream.Consumer
	b := backoff.NewExponentialBackOff()
	b.MaxInterval, b.MaxElapsedTime = wcfg.MaxBackoff, 0
	err = backoff.RetryNotify(func() error {
		// Each attempt is bounded: a JetStream call on a connection that
		// never came up would otherwise wait for ever, saying nothing.
		actx, cancel := context.WithTimeout(ctx, startupAttempt)
		defer cancel()
		if err := repo.Migrate(actx, pool); err != nil {
			return err
		}
		if err := awaitNATS(actx, nc); err != nil {
			return err
		}
		cons, err = client.Setup(actx, js, scfg)
		if errors.Is(err, client.ErrNoStorage) {
			return backoff.Permanent(err) // a setting to change, not an outage to wait out
		}
		if err != nil && !nc.IsConnected() {
			// Not a JetStream problem: name the server it cannot reach.
			return fmt.Errorf("cannot connect to NATS at %s (%s): %w", natsShown(nc), nc.Status(), err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		log.Warn("start-up: waiting for dependencies", zap.Duration("retry_in", d), zap.Error(err))
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before starting
		}
		return err
	}
	for _, name := range client.Unbounded(ctx, js) {
		log.Warn("stream has no limits: it grows until the disk is full; set max age and max bytes with `nats stream edit` (see docs/runbook.md, Stream limits)",
			zap.String("stream", name))
	}
	w := consumer.NewWorker(js, cons, handler(app.New(repo.New(pool), cfg.Source)), log, wcfg)
	worker.Store(w)
	if started != nil {
		started(opsAddr)
	}
	return w.Run(ctx)
}

// handler is the worker's Handler around the application: the application
// itself, but in the fault tests' build (faulthook.go).
var handler = func(a *app.App) consumer.Handler { return a }
