package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/api"
	"simworker/app"
	"simworker/cmd/internal/cli"
	"simworker/cmd/internal/ops"
	"simworker/docs"
	"simworker/internal/httpserve"
	"simworker/repo"
)

// apiSettings are the API's own settings, shared by api and dev.
type apiSettings struct {
	Wait time.Duration `env:"SIM_API_WAIT" envDefault:"10s" flag:"wait" help:"how long a request waits for its outcome before answering 202"`
	Rate float64       `env:"SIM_API_RATE" envDefault:"100" flag:"rate" help:"requests per second per token (bursts of twice that); 0 turns the limit off"`
}

// Validate: a wait and a rate are not negative.
func (a *apiSettings) Validate(c *cli.Check) {
	c.NotNegative(&a.Wait)
	if a.Rate < 0 {
		c.Fail(&a.Rate, "%v is negative (0 turns the limit off)", a.Rate)
	}
}

// apiPoolConns is the API's pool size unless DATABASE_URL sets
// pool_max_conns: each request commits a row of its own, and concurrent
// commits share a WAL flush only if they have connections to wait on.
const apiPoolConns = 32

// apiConfig is the configuration of simworker api.
type apiConfig struct {
	NATS     cli.NATS
	Database cli.Database
	Addr     string `env:"SIM_API_ADDR" envDefault:":8081" flag:"addr" help:"address of the API (host:port; port 0 picks a free one)"`
	HTTPAddr string `env:"SIM_HTTP_ADDR" envDefault:":8080" flag:"http-addr" help:"address of /healthz, /readyz and /metrics (host:port; port 0 picks a free one; 'off' disables)"`
	API      apiSettings
	LogLevel string `env:"SIM_LOG_LEVEL" envDefault:"info" flag:"log-level" help:"debug, info, warn or error"`
}

// Validate: the log level is one zap knows.
func (a *apiConfig) Validate(c *cli.Check) { c.OneOf(&a.LogLevel, "debug", "info", "warn", "error") }

func apiCmd(ctx context.Context, cfg *apiConfig, _ []string, _, stderr io.Writer) error {
	st, err := start(ctx, cfg, cfg.LogLevel, "simworker-api", false, stderr)
	if err != nil {
		return err
	}
	defer st.stop()
	log := st.log
	pool, err := repo.OpenPool(ctx, cfg.Database.URL, apiPoolConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, err := cfg.NATS.Connect("simworker-api", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("SIM_API_ADDR %s: %w", cfg.Addr, err)
	}
	return serveAPI(ctx, log, nc, pool, ln, cfg.API, cfg.HTTPAddr)
}

// serveAPI migrates (waiting for PostgreSQL with backoff) and serves the API
// on ln until ctx ends; then requests in flight finish, bounded by the
// longest a request can take (its wait and its publish), and it returns nil.
func serveAPI(ctx context.Context, log *zap.Logger, nc *nats.Conn, pool *pgxpool.Pool, ln net.Listener, set apiSettings, httpAddr string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	acfg := api.Config{Wait: set.Wait, Rate: set.Rate, Docs: docs.Handler(api.NotFound())}
	var server atomic.Pointer[api.Server]
	var opsSrv *ops.Server
	if httpAddr != "off" {
		opsSrv = ops.NewFor(ops.APIRole, nc, js, pool, func() bool { s := server.Load(); return s != nil && s.Live() })
		if err := opsSrv.Start(httpAddr, log); err != nil {
			return fmt.Errorf("SIM_HTTP_ADDR %s: %w", httpAddr, err)
		}
		defer opsSrv.Stop()
		acfg.Metrics = api.NewMetrics(opsSrv.Registry())
	}
	b := backoff.NewExponentialBackOff()
	b.MaxElapsedTime = 0
	if err := backoff.RetryNotify(func() error { return repo.Migrate(ctx, pool) }, backoff.WithContext(b, ctx),
		func(err error, d time.Duration) {
			log.Warn("start-up: waiting for PostgreSQL", zap.Duration("retry_in", d), zap.Error(err))
		}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s, err := api.New(nc, js, app.New(repo.New(pool), ""), log, acfg)
	if err != nil {
		return err
	}
	defer s.Close()
	server.Store(s)
	hs := httpserve.New(s)
	if opsSrv != nil {
		opsSrv.CountConnections("api", hs.Open)
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	log.Info("API serving", zap.String("addr", ln.Addr().String()))
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	grace := s.Config().Wait + s.Config().PublishAck + time.Second
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("API stop: requests still in flight were cut off", zap.Duration("grace", grace), zap.Error(err))
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("API stopped")
	return nil
}
