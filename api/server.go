// Package api is the platform's "Create a SIM" call over HTTP, on top of the
// commands and events: it authenticates the caller with an API token,
// publishes a Create-SIM command for the token's user, waits for that
// command's outcome event and answers with the seed's statuses. It decides
// nothing itself: the worker decides every SIM. The contract is section 5 of
// docs/contract.md and docs/openapi.yaml.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"simworker/app"
)

// Config tunes the API. Zero fields take the defaults in parentheses.
type Config struct {
	Wait       time.Duration // how long a request waits for its outcome before 202 (10s)
	Rate       float64       // requests per second per token, bursts of twice that; 0 turns the limit off
	PublishAck time.Duration // how long a publish waits for JetStream's acknowledgement before 503 (5s)
	Metrics    *Metrics      // requests, latency, outcomes waited for, 202s, 503s (none)
	// Docs serves GET /openapi.yaml and GET /docs (none).
	Docs http.Handler
}

func (c Config) withDefaults() Config {
	if c.Wait <= 0 {
		c.Wait = 10 * time.Second
	}
	if c.PublishAck <= 0 {
		c.PublishAck = 5 * time.Second
	}
	return c
}

// Server is the HTTP API of one process. It holds one subscription to the
// outcome events, shared by every request.
type Server struct {
	cfg      Config
	app      *app.App
	js       jetstream.JetStream
	log      *zap.Logger
	waiter   *waiter
	records  *recorder
	tokens   *tokenCache
	refusals *refusals
	limiter  *limiter
	handler  http.Handler
}

// New builds the API on a NATS connection (publishing commands, receiving
// events) and the application (tokens, the commands the API made, stored
// outcomes, SIMs). Close releases its subscription and its writers.
func New(nc *nats.Conn, js jetstream.JetStream, a *app.App, log *zap.Logger, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	w, err := newWaiter(nc)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, app: a, js: js, log: log, waiter: w, records: newRecorder(a),
		tokens: newTokenCache(func(ctx context.Context, token string) (string, string, bool, error) {
			ctx, cancel := withDB(ctx)
			defer cancel()
			return a.Authenticate(ctx, token)
		}),
		refusals: newRefusals(), limiter: newLimiter(cfg.Rate)}
	s.handler = s.routes()
	return s, nil
}

// routes: the API's paths, each behind authentication (check a) and the
// token's rate (check b); the reference documents without a token.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	guarded := func(h http.HandlerFunc) http.Handler { return s.authenticate(s.limiter.limit(h)) }
	mux.Handle("POST /v1/sims", guarded(s.createSim))
	mux.Handle("GET /v1/commands/{command_id}", guarded(s.getCommand))
	mux.Handle("GET /v1/sims/{id}", guarded(s.getSim))
	if s.cfg.Docs != nil {
		mux.Handle("GET /openapi.yaml", s.cfg.Docs)
		mux.Handle("GET /docs", s.cfg.Docs)
		mux.Handle("GET /docs/", s.cfg.Docs)
	}
	return s.cfg.Metrics.instrument(mux, routed(mux))
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Live reports whether the outcome events subscription receives events.
func (s *Server) Live() bool { return s.waiter.live() }

// Close ends the events subscription and the writing of records.
func (s *Server) Close() {
	s.waiter.close()
	s.records.close()
}

// dbTimeout bounds each PostgreSQL call of a request: a link that stays
// open but carries nothing gets a 503 after it, not a request that hangs.
const dbTimeout = 5 * time.Second

func withDB(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, dbTimeout)
}

// Config is the API's configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }
