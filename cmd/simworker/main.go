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

// logOutput is where the programs log (tests capture it).
var logOutput io.Writer = os.Stderr

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
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(ctx, os.Args[2:])
	case "dev":
		err = devCmd(ctx, os.Args[2:])
	case "migrate":
		err = migrateCmd(ctx, os.Args[2:])
	case "probe":
		err = probeCmd(ctx, os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "simworker: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "simworker:", err)
		os.Exit(1)
	}
}

// workerSettings are the settings shared by run and dev.
type workerSettings struct {
	source, batch, concurrency, ackWait, maxBackoff, retryWindow, poison, shutdown *string
	replicas, dupWindow, logLevel, httpAddr                                        *string
}

func declareWorker(s *cli.Settings, httpDefault string) *workerSettings {
	return &workerSettings{
		source:      s.String("source", "SIM_SOURCE", "simworker", "CloudEvents source attribute of published events"),
		batch:       s.String("batch-size", "SIM_BATCH_SIZE", "500", "most commands decided in one transaction (a batch never waits to fill)"),
		concurrency: s.String("concurrency", "SIM_CONCURRENCY", "2", "batches decided at once, each in its own transaction"),
		ackWait:     s.String("ack-wait", "SIM_ACK_WAIT", "30s", "AckWait of the durable consumer when the worker creates it; in-flight work is kept alive every third of it"),
		maxBackoff:  s.String("max-backoff", "SIM_MAX_BACKOFF", "30s", "cap of the wait between retries while NATS or PostgreSQL is down"),
		retryWindow: s.String("retry-window", "SIM_RETRY_WINDOW", "15s", "how long a batch is retried in place during an outage before it is NAKed with a delay"),
		poison:      s.String("poison-retries", "SIM_POISON_RETRIES", "3", "retries of a command that fails unexpectedly (not an outage) before it gets a 500 internal outcome"),
		shutdown:    s.String("shutdown-timeout", "SIM_SHUTDOWN_TIMEOUT", "25s", "how long work in flight may take after SIGINT/SIGTERM"),
		replicas:    s.String("stream-replicas", "SIM_STREAM_REPLICAS", "1", "replicas of the streams and consumer when the worker creates them (3 on a cluster)"),
		dupWindow:   s.String("duplicate-window", "SIM_DUPLICATE_WINDOW", "2m", "JetStream duplicate window of the streams when the worker creates them"),
		logLevel:    s.String("log-level", "SIM_LOG_LEVEL", "info", "debug, info, warn or error"),
		httpAddr:    s.String("http-addr", "SIM_HTTP_ADDR", httpDefault, "address of /healthz, /readyz and /metrics (host:port; port 0 picks a free one; 'off' disables)"),
	}
}

func (ws *workerSettings) configs() (consumer.Config, consumer.StreamConfig, error) {
	var (
		c   consumer.Config
		sc  consumer.StreamConfig
		err error
	)
	c.Source = *ws.source
	errs := []error{}
	add := func(e error) { errs = append(errs, e) }
	if c.BatchSize, err = cli.Int("SIM_BATCH_SIZE", *ws.batch); err != nil {
		add(err)
	}
	if c.Concurrency, err = cli.Int("SIM_CONCURRENCY", *ws.concurrency); err != nil {
		add(err)
	}
	if c.AckWait, err = cli.Duration("SIM_ACK_WAIT", *ws.ackWait); err != nil {
		add(err)
	}
	if c.MaxBackoff, err = cli.Duration("SIM_MAX_BACKOFF", *ws.maxBackoff); err != nil {
		add(err)
	}
	if c.RetryWindow, err = cli.Duration("SIM_RETRY_WINDOW", *ws.retryWindow); err != nil {
		add(err)
	}
	if c.PoisonRetries, err = cli.Int("SIM_POISON_RETRIES", *ws.poison); err != nil {
		add(err)
	}
	if c.ShutdownTimeout, err = cli.Duration("SIM_SHUTDOWN_TIMEOUT", *ws.shutdown); err != nil {
		add(err)
	}
	if sc.Replicas, err = cli.Int("SIM_STREAM_REPLICAS", *ws.replicas); err != nil {
		add(err)
	}
	if sc.DuplicateWindow, err = cli.Duration("SIM_DUPLICATE_WINDOW", *ws.dupWindow); err != nil {
		add(err)
	}
	if c.BatchSize > 10000 {
		add(errors.New("SIM_BATCH_SIZE: at most 10000"))
	}
	sc.AckWait = c.AckWait
	return c, sc, errors.Join(errs...)
}

func runCmd(ctx context.Context, args []string) error {
	s := cli.New("simworker run", "simworker run: consume Create-SIM commands from JetStream and publish their outcomes.")
	natsCfg := cli.DeclareNATS(s, true)
	dbURL := s.Required("database-url", "DATABASE_URL", "PostgreSQL URL; TLS through it, e.g. ?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.pem")
	s.Secret()
	ws := declareWorker(s, ":8080")
	if err := s.Parse(args); err != nil {
		return err
	}
	wcfg, scfg, err := ws.configs()
	if err != nil {
		return err
	}
	log, err := cli.Logger(*ws.logLevel, logOutput)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

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
	pool, err := repo.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, err := natsCfg.Connect("simworker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	return work(ctx, log, nc, pool, wcfg, scfg, *ws.httpAddr)
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

func probeCmd(ctx context.Context, args []string) error {
	s := cli.New("simworker probe", "simworker probe: exit 0 when the URL answers 200 within 3 s (a container health check).")
	u := s.String("url", "SIM_PROBE_URL", "http://127.0.0.1:8080/readyz", "what to probe: a worker's /readyz or /healthz")
	if err := s.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
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
		return fmt.Errorf("%s: %s %s", *u, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func migrateCmd(ctx context.Context, args []string) error {
	s := cli.New("simworker migrate", "simworker migrate: apply the database migrations and exit.")
	dbURL := s.Required("database-url", "DATABASE_URL", "PostgreSQL URL")
	s.Secret()
	if err := s.Parse(args); err != nil {
		return err
	}
	pool, err := repo.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := repo.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Println("migrations applied")
	return nil
}

func devCmd(ctx context.Context, args []string) error {
	s := cli.New("simworker dev", "simworker dev: in-process NATS with JetStream, a private PostgreSQL, demo data and the worker, in one process.")
	dataDir := s.String("data-dir", "SIM_DEV_DATA_DIR", ".simworker-dev", "where the dev PostgreSQL cluster and JetStream store live (kept between runs)")
	natsPort := s.String("nats-port", "SIM_DEV_NATS_PORT", "0", "NATS client port; 0 picks a free one")
	pgPort := s.String("pg-port", "SIM_DEV_PG_PORT", "0", "PostgreSQL port; 0 picks a free one")
	syncInterval := s.String("nats-sync-interval", "SIM_DEV_NATS_SYNC_INTERVAL", "10s", "JetStream file store fsync interval ('always' fsyncs every write)")
	ws := declareWorker(s, "127.0.0.1:0")
	if err := s.Parse(args); err != nil {
		return err
	}
	wcfg, scfg, err := ws.configs()
	if err != nil {
		return err
	}
	ports := map[string]int{}
	for name, v := range map[string]string{"SIM_DEV_NATS_PORT": *natsPort, "SIM_DEV_PG_PORT": *pgPort} {
		var p int
		if _, err := fmt.Sscan(v, &p); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("%s: %q is not a port number (0 picks a free one)", name, v)
		}
		ports[name] = p
	}
	nopts := devstack.NATSOptions{Port: ports["SIM_DEV_NATS_PORT"]}
	if *syncInterval == "always" {
		nopts.SyncAlways = true
	} else if nopts.SyncInterval, err = cli.Duration("SIM_DEV_NATS_SYNC_INTERVAL", *syncInterval); err != nil {
		return err
	}
	log, err := cli.Logger(*ws.logLevel, logOutput)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	log.Info("starting private PostgreSQL", zap.String("data_dir", filepath.Join(dir, "pg")))
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: filepath.Join(dir, "pg"), Port: ports["SIM_DEV_PG_PORT"], Log: io.Discard})
	if err != nil {
		return err
	}
	defer pg.Stop()
	dbURL, err := ensureDatabase(ctx, pg.URL, "simworker")
	if err != nil {
		return err
	}

	nopts.StoreDir = filepath.Join(dir, "nats")
	ns, err := devstack.StartNATS(nopts)
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
	nc, err := cli.PlainNATS(ns.URL).Connect("simworker-dev", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	fmt.Printf(`
simworker dev is ready (Ctrl-C stops it; data is kept in %s).

  export NATS_URL=%s
  export DATABASE_URL='%s'

Watch the outcome events (in another terminal):
  %[4]s --server %[2]s sub 'sim.events.>'

Publish a Create-SIM command (demo data: user u-alice may create SIMs for device d-1):
  %[4]s --server %[2]s pub sim.commands.create -H Nats-Msg-Id:c-0001 '{"command_id": "c-0001", "actor_id": "u-alice", "sim": {"device_id": "d-1", "iccid": "8944500102198304826"}}'
%[5]s
`, dir, ns.URL, dbURL, natsCLI(), natsHint())
	return work(ctx, log, nc, pool, wcfg, scfg, *ws.httpAddr)
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
