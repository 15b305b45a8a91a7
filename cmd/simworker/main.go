// Command simworker is the SIM-provisioning worker: `simworker run` consumes
// Create-SIM commands from JetStream; `simworker dev` runs everything in one
// process for a first try; `simworker migrate` applies the migrations and
// exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/cmd/internal/cli"
	"simworker/cmd/internal/ops"
	"simworker/consumer"
	"simworker/deploy"
	"simworker/internal/devstack"
	"simworker/repo"
)

const usage = `simworker: turns Create-SIM commands from NATS JetStream into sim.created / sim.rejected events.

Usage:
  simworker run      consume commands (needs NATS_URL and DATABASE_URL)
  simworker dev      all-in-one: in-process NATS with JetStream, a private PostgreSQL, demo data, the worker
  simworker migrate  apply the database migrations and exit (needs DATABASE_URL)
  simworker probe    exit 0 when a worker's /readyz (or /healthz) answers 200: a health check for
                     images without a shell

Run 'simworker COMMAND --help' for the settings of a command.
`

// defaultGCPercent is the garbage collector's target when GOGC is not set.
// The worker's live heap is small (tens of MB) and it allocates per command,
// so at Go's default of 100 the collector ran so often that it took about a
// sixth of the worker's CPU; at 300 (measured with make bench) it costs
// about 15% less CPU per command for about 20 MB more resident memory.
// GOGC and GOMEMLIMIT in the environment still rule.
const defaultGCPercent = 300

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "simworker: %s\n\n%s", ue, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "simworker:", err)
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// commands are simworker's commands, each with its configuration.
func commands() []cli.Command {
	return []cli.Command{
		cli.NewCommand("simworker run", "simworker run: consume Create-SIM commands from JetStream and publish their outcomes.", runCmd),
		cli.NewCommand("simworker dev", "simworker dev: in-process NATS with JetStream, a private PostgreSQL, demo data and the worker, in one process.", devCmd),
		cli.NewCommand("simworker migrate", "simworker migrate: apply the database migrations and exit.", migrateCmd),
		cli.NewCommand("simworker probe", "simworker probe: exit 0 when the URL answers 200 within 3 s (a container health check).", probeCmd),
	}
}

// dispatch runs the command args names, writing to stdout and stderr.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	c, rest, ok := cli.Find(commands(), args)
	if !ok {
		return usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	return c.Run(ctx, rest, stdout, stderr)
}

// workerConfig are the worker's settings, shared by run and dev.
type workerConfig struct {
	Source          string        `env:"SIM_SOURCE" envDefault:"simworker" flag:"source" help:"CloudEvents source attribute of published events"`
	BatchSize       int           `env:"SIM_BATCH_SIZE" envDefault:"500" flag:"batch-size" help:"most commands decided in one transaction, at most 10000 (a batch never waits to fill)"`
	Concurrency     int           `env:"SIM_CONCURRENCY" envDefault:"2" flag:"concurrency" help:"batches decided at once, each in its own transaction"`
	AckWait         time.Duration `env:"SIM_ACK_WAIT" envDefault:"30s" flag:"ack-wait" help:"AckWait of the durable consumer when the worker creates it; in-flight work is kept alive every third of it"`
	MaxBackoff      time.Duration `env:"SIM_MAX_BACKOFF" envDefault:"30s" flag:"max-backoff" help:"cap of the wait between retries while NATS or PostgreSQL is down"`
	RetryWindow     time.Duration `env:"SIM_RETRY_WINDOW" envDefault:"15s" flag:"retry-window" help:"how long a batch is retried in place during an outage before it is NAKed with a delay"`
	PoisonRetries   int           `env:"SIM_POISON_RETRIES" envDefault:"3" flag:"poison-retries" help:"retries of a command that fails unexpectedly (not an outage) before it gets a 500 internal outcome"`
	ShutdownTimeout time.Duration `env:"SIM_SHUTDOWN_TIMEOUT" envDefault:"25s" flag:"shutdown-timeout" help:"how long work in flight may take after SIGINT/SIGTERM"`
	StreamReplicas  int           `env:"SIM_STREAM_REPLICAS" envDefault:"1" flag:"stream-replicas" help:"replicas of the streams and consumer when the worker creates them (3 on a cluster)"`
	DuplicateWindow time.Duration `env:"SIM_DUPLICATE_WINDOW" envDefault:"2m" flag:"duplicate-window" help:"JetStream duplicate window of the streams when the worker creates them"`
	LogLevel        string        `env:"SIM_LOG_LEVEL" envDefault:"info" flag:"log-level" help:"debug, info, warn or error"`
}

// Validate checks the ranges consumer.Config and the streams accept.
func (w *workerConfig) Validate(c *cli.Check) {
	c.Range(&w.BatchSize, 1, 10000)
	c.Positive(&w.Concurrency, &w.PoisonRetries, &w.StreamReplicas)
	c.NotNegative(&w.AckWait, &w.MaxBackoff, &w.RetryWindow, &w.ShutdownTimeout, &w.DuplicateWindow)
	c.OneOf(&w.LogLevel, "debug", "info", "warn", "error")
}

// configs are the worker's and the streams' configurations: the one place
// the settings become them.
func (w *workerConfig) configs() (consumer.Config, consumer.StreamConfig) {
	return consumer.Config{
			Source:          w.Source,
			BatchSize:       w.BatchSize,
			Concurrency:     w.Concurrency,
			AckWait:         w.AckWait,
			MaxBackoff:      w.MaxBackoff,
			RetryWindow:     w.RetryWindow,
			PoisonRetries:   w.PoisonRetries,
			ShutdownTimeout: w.ShutdownTimeout,
		}, consumer.StreamConfig{
			Replicas:        w.StreamReplicas,
			DuplicateWindow: w.DuplicateWindow,
			AckWait:         w.AckWait,
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
	log, err := cli.Logger(cfg.Worker.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("settings", cli.Fields(cfg)...)

	// SIM_CPU_PROFILE (undocumented in --help: a tool for make bench) writes
	// a CPU profile of the whole run.
	if path := os.Getenv("SIM_CPU_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
		// The allocations of the run go next to it, for the same tool.
		defer func() {
			if f, err := os.Create(path + ".allocs"); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
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
	wcfg, scfg := cfg.Worker.configs()
	return work(ctx, log, nc, pool, wcfg, scfg, cfg.HTTPAddr)
}

// work migrates, sets the streams up and runs the worker until ctx ends.
// Dependencies that are down at start are waited for with backoff.
func work(ctx context.Context, log *zap.Logger, nc *nats.Conn, pool *pgxpool.Pool, wcfg consumer.Config, scfg consumer.StreamConfig, httpAddr string) error {
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
	if httpAddr != "off" {
		srv := ops.New(nc, js, pool, func() bool { w := worker.Load(); return w != nil && w.Ready() })
		if err := srv.Start(httpAddr, log); err != nil {
			return fmt.Errorf("SIM_HTTP_ADDR %s: %w", httpAddr, err)
		}
		defer srv.Stop()
		wcfg.Observer = srv.Metrics
	}
	var cons jetstream.Consumer
	b := backoff.NewExponentialBackOff()
	b.MaxInterval, b.MaxElapsedTime = wcfg.MaxBackoff, 0
	err = backoff.RetryNotify(func() error {
		if err := repo.Migrate(ctx, pool); err != nil {
			return err
		}
		cons, err = consumer.Setup(ctx, js, scfg)
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
	w := consumer.NewWorker(js, cons, repo.NewStore(pool, wcfg.Source), log, wcfg)
	worker.Store(w)
	return w.Run(ctx)
}

// probeConfig is the configuration of simworker probe.
type probeConfig struct {
	URL string `env:"SIM_PROBE_URL" envDefault:"http://127.0.0.1:8080/readyz" flag:"url" help:"what to probe: a worker's /readyz or /healthz"`
}

func probeCmd(ctx context.Context, cfg *probeConfig, _ []string, _, _ io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", cfg.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// migrateConfig is the configuration of simworker migrate.
type migrateConfig struct {
	Database cli.Database
}

func migrateCmd(ctx context.Context, cfg *migrateConfig, _ []string, stdout, _ io.Writer) error {
	pool, err := repo.Open(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := repo.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// devConfig is the configuration of simworker dev.
type devConfig struct {
	DataDir      string       `env:"SIM_DEV_DATA_DIR" envDefault:".simworker-dev" flag:"data-dir" help:"where the dev PostgreSQL cluster and JetStream store live (kept between runs)"`
	NATSPort     int          `env:"SIM_DEV_NATS_PORT" envDefault:"0" flag:"nats-port" help:"NATS client port; 0 picks a free one"`
	PGPort       int          `env:"SIM_DEV_PG_PORT" envDefault:"0" flag:"pg-port" help:"PostgreSQL port; 0 picks a free one"`
	SyncInterval syncInterval `env:"SIM_DEV_NATS_SYNC_INTERVAL" envDefault:"10s" flag:"nats-sync-interval" help:"JetStream file store fsync interval ('always' fsyncs every write)"`
	Worker       workerConfig
	HTTPAddr     string `env:"SIM_HTTP_ADDR" envDefault:"127.0.0.1:0" flag:"http-addr" help:"address of /healthz, /readyz and /metrics (host:port; port 0 picks a free one; 'off' disables)"`
}

// Validate: ports are ports.
func (d *devConfig) Validate(c *cli.Check) {
	for _, p := range []*int{&d.NATSPort, &d.PGPort} {
		if *p < 0 || *p > 65535 {
			c.Fail(p, "%d is not a port number (0 picks a free one)", *p)
		}
	}
}

// syncInterval is the JetStream file store's fsync interval: every write
// ("always"), or a duration.
type syncInterval struct {
	always bool
	every  time.Duration
}

func (s *syncInterval) UnmarshalText(b []byte) error {
	if string(b) == "always" {
		*s = syncInterval{always: true}
		return nil
	}
	d, err := time.ParseDuration(string(b))
	if err != nil || d < 0 {
		return errors.New("is neither 'always' nor a duration (e.g. 10s, 2m)")
	}
	*s = syncInterval{every: d}
	return nil
}

func (s syncInterval) MarshalText() ([]byte, error) {
	if s.always {
		return []byte("always"), nil
	}
	return []byte(s.every.String()), nil
}

func devCmd(ctx context.Context, cfg *devConfig, _ []string, stdout, stderr io.Writer) error {
	log, err := cli.Logger(cfg.Worker.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("settings", cli.Fields(cfg)...)

	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	log.Info("starting private PostgreSQL", zap.String("data_dir", filepath.Join(dir, "pg")))
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: filepath.Join(dir, "pg"), Port: cfg.PGPort, Log: io.Discard})
	if err != nil {
		return err
	}
	defer pg.Stop()
	dbURL, err := ensureDatabase(ctx, pg.URL, "simworker")
	if err != nil {
		return err
	}

	ns, err := devstack.StartNATS(devstack.NATSOptions{Port: cfg.NATSPort, StoreDir: filepath.Join(dir, "nats"),
		SyncInterval: cfg.SyncInterval.every, SyncAlways: cfg.SyncInterval.always})
	if err != nil {
		return err
	}
	defer ns.Shutdown()

	pool, err := repo.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := repo.Migrate(ctx, pool); err != nil {
		return err
	}
	fx, err := repo.ParseFixtures(deploy.DemoFixtures)
	if err != nil {
		return err
	}
	if _, err := repo.LoadFixtures(ctx, pool, fx); err != nil {
		return err
	}
	nc, err := cli.NATS{URL: ns.URL}.Connect("simworker-dev", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	fmt.Fprintf(stdout, `
simworker dev is ready (Ctrl-C stops it; data is kept in %s).

  export NATS_URL=%s
  export DATABASE_URL='%s'

Watch the outcome events (in another terminal):
  %[4]s --server %[2]s sub 'sim.events.>'

Publish a Create-SIM command (demo data: user u-alice may create SIMs for device d-1):
  %[4]s --server %[2]s pub sim.commands.create -H Nats-Msg-Id:c-0001 '{"command_id": "c-0001", "actor_id": "u-alice", "sim": {"device_id": "d-1", "iccid": "8944500102198304826"}}'
%[5]s
`, dir, ns.URL, dbURL, natsCLI(), natsHint())
	wcfg, scfg := cfg.Worker.configs()
	return work(ctx, log, nc, pool, wcfg, scfg, cfg.HTTPAddr)
}

// natsCLI is how to call the nats CLI here: "nats" when it is on PATH, else
// its path under GOPATH/bin when `make run` installed it there.
func natsCLI() string {
	if _, err := exec.LookPath("nats"); err == nil {
		return "nats"
	}
	if p := goBinNats(); p != "" {
		return p
	}
	return "nats"
}

func natsHint() string {
	if _, err := exec.LookPath("nats"); err == nil || goBinNats() != "" {
		return ""
	}
	return "\nThe nats CLI is not installed: go install github.com/nats-io/natscli/nats@v0.5.0\n"
}

func goBinNats() string {
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", "nats")
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	return ""
}

// ensureDatabase creates the named database on the server when missing and
// returns its URL.
func ensureDatabase(ctx context.Context, serverURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", err
		}
	}
	return strings.Replace(serverURL, "/postgres?", "/"+name+"?", 1), nil
}
