package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/internal/devstack"
	"simworker/repo"
)

// bench is the infrastructure of a run.
type bench struct {
	o         options
	serverURL string // PostgreSQL server (maintenance database)
	natsURL   string
	nc        *nats.Conn
	js        jetstream.JetStream
	rows      []string
	dbs       int
	pgPID     int  // the PostgreSQL cluster this program started, 0 for DATABASE_URL
	ownNATS   bool // the nats-server runs in this process
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "simbench: "+format+"\n", args...)
}

// start brings up what a run needs: the simworker binary (built unless
// -worker names one), PostgreSQL (DATABASE_URL, or a private cluster with its
// defaults: fsync and synchronous_commit on), NATS (NATS_URL, or an
// in-process nats-server with JetStream file storage). stop takes it down.
func start(ctx context.Context, o options) (b *bench, stop func(), err error) {
	b = &bench{o: o}
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if b.o.workerBin == "" {
		dir, err := os.MkdirTemp("", "simbench-")
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, func() { os.RemoveAll(dir) })
		b.o.workerBin = filepath.Join(dir, "simworker")
		b.logf("building simworker")
		if out, err := exec.Command("go", "build", "-o", b.o.workerBin, "./cmd/simworker").CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("build simworker: %v: %s", err, out)
		}
	}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		b.serverURL = u
	} else {
		b.logf("starting PostgreSQL (defaults: fsync on, synchronous_commit on)")
		pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{})
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, func() { _ = pg.Stop() })
		b.serverURL, b.pgPID = pg.URL, pg.PID()
	}
	if u := os.Getenv("NATS_URL"); u != "" {
		b.natsURL = u
	} else {
		ns, err := devstack.StartNATS(devstack.NATSOptions{})
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, ns.Shutdown)
		b.natsURL, b.ownNATS = ns.URL, true
	}
	if b.nc, err = nats.Connect(b.natsURL); err != nil {
		return nil, nil, err
	}
	undo = append(undo, b.nc.Close)
	if b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4000)); err != nil {
		return nil, nil, err
	}
	return b, stop, nil
}

// newDatabase creates a migrated database with the fixtures.
func (b *bench) newDatabase(ctx context.Context) (string, *pgxpool.Pool, error) {
	b.dbs++
	name := fmt.Sprintf("simbench_%d_%d", os.Getpid(), b.dbs)
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(b.serverURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	pool, err := repo.Open(ctx, u.String())
	if err != nil {
		return "", nil, err
	}
	if err := repo.Migrate(ctx, pool); err != nil {
		return "", nil, err
	}
	if _, err := repo.New(pool).LoadFixtures(ctx, fixtures()); err != nil {
		return "", nil, err
	}
	return u.String(), pool, nil
}

// checkpoint asks PostgreSQL to write out the dirty pages of earlier runs
// first, so a measured run does not pay for its predecessor's writes (its
// commit fsyncs would queue behind the checkpoint's). Without the privilege
// (DATABASE_URL of a plain user) the run goes on without it.
func (b *bench) checkpoint(ctx context.Context) {
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err == nil {
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CHECKPOINT")
	}
	if err != nil {
		b.logf("CHECKPOINT before the run failed (%v): the run may pay for earlier writes", err)
	}
}

// freshStreams deletes and recreates the worker's streams and consumer.
func (b *bench) freshStreams(ctx context.Context) error {
	for _, s := range []string{client.CommandsStream, client.EventsStream, client.DeadLetterStream} {
		_ = b.js.DeleteStream(ctx, s)
	}
	_, err := client.Setup(ctx, b.js, client.StreamConfig{})
	return err
}

// worker runs `simworker run` against dbURL and returns it with a function
// that stops it and reports its peak RSS.
func (b *bench) worker(dbURL, cpuProfile string) (func() (int64, error), int, error) {
	cmd := exec.Command(b.o.workerBin, "run")
	cmd.Env = append(os.Environ(), "NATS_URL="+b.natsURL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=warn", "SIM_HTTP_ADDR=127.0.0.1:0",
		"SIM_BATCH_SIZE="+strconv.Itoa(b.o.batchSize), "SIM_CONCURRENCY="+strconv.Itoa(b.o.concurrency))
	if cpuProfile != "" {
		cmd.Env = append(cmd.Env, "SIM_CPU_PROFILE="+cpuProfile)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	return func() (int64, error) {
		rss := peakRSS(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		return rss, err
	}, cmd.Process.Pid, nil
}

// waitReady waits until the worker pulls from the consumer.
func (b *bench) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := b.js.Consumer(ctx, client.CommandsStream, client.DurableName)
		if err == nil && c.CachedInfo().NumWaiting > 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the worker never pulled")
}

// waitEvents waits until SIM_EVENTS holds n events.
func (b *bench) waitEvents(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s, err := b.js.Stream(ctx, client.EventsStream)
		if err == nil && int(s.CachedInfo().State.Msgs) >= n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("fewer than %d outcomes within %s", n, limit)
}
