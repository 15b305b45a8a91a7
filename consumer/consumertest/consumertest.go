// Package consumertest runs the real things for tests: an in-process
// JetStream server with the worker's streams, and workers on it.
package consumertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"simworker/app"
	"simworker/client"
	"simworker/consumer"
	"simworker/internal/devstack"
	"simworker/repo"
)

// NATS starts a JetStream server of the test's own, sets up the worker's
// streams and consumer with sc, and connects to it; all closed in cleanup.
func NATS(t testing.TB, sc client.StreamConfig) (*devstack.NATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	return NATSWith(t, devstack.NATSOptions{}, sc)
}

// NATSWith is NATS on a server started with o.
func NATSWith(t testing.TB, o devstack.NATSOptions, sc client.StreamConfig) (*devstack.NATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := devstack.StartNATS(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc := Connect(t, ns.URL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Setup(context.Background(), js, sc); err != nil {
		t.Fatal(err)
	}
	return ns, nc, js
}

// Connect opens a NATS connection closed in cleanup.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Worker runs a worker with its own connection to natsURL and its own pool on
// dbURL until the test ends. stop cancels it and waits for Run to return
// (its error, or one saying it did not stop within 30 s).
func Worker(t testing.TB, natsURL, dbURL string, cfg consumer.Config) (w *consumer.Worker, stop func() error) {
	t.Helper()
	js, err := jetstream.New(Connect(t, natsURL))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := repo.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return WorkerOn(t, js, pool, cfg, func() { pool.Close() })
}

// WorkerOn runs a worker on js and pool (the application on it, its events'
// source the default) until the test ends; after is called once it
// stopped.
func WorkerOn(t testing.TB, js jetstream.JetStream, pool *pgxpool.Pool, cfg consumer.Config, after func()) (*consumer.Worker, func() error) {
	t.Helper()
	return WorkerFor(t, js, app.New(repo.New(pool), ""), cfg, after)
}

// WorkerFor runs a worker on js handing its commands to h until the test
// ends; after is called once it stopped.
func WorkerFor(t testing.TB, js jetstream.JetStream, h consumer.Handler, cfg consumer.Config, after func()) (*consumer.Worker, func() error) {
	t.Helper()
	cons, err := client.Setup(context.Background(), js, client.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	w := consumer.NewWorker(js, cons, h, log, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var (
		once   sync.Once
		runErr error
	)
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("worker did not stop within 30s")
			}
			if after != nil {
				after()
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return w, stop
}

// StreamMessages returns every message stored in the stream, in order
// (sequences that were deleted are skipped).
func StreamMessages(t testing.TB, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("read %s message %d: %v", stream, seq, err)
		}
		out = append(out, m)
	}
	return out
}
