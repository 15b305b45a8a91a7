// Package ops serves what operators of the worker scrape and probe:
// /healthz (the process is alive), /readyz (NATS connected, PostgreSQL
// reachable, consumer bound) and /metrics (Prometheus).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"simworker/client"
	"simworker/domain"
	"simworker/internal/httpserve"
)

// Metrics counts what the worker does; it is the worker's consumer.Observer.
type Metrics struct {
	commands    *prometheus.CounterVec
	latency     prometheus.Histogram
	redelivered prometheus.Counter
	deadLetters prometheus.Counter
	unavailable prometheus.Counter
	ackFailures prometheus.Counter
}

// NewMetrics registers the worker's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simworker_commands_total",
			Help: "Commands whose outcome was published, by outcome type and rejection code (code is empty for sim.created). Re-published stored outcomes count again.",
		}, []string{"type", "code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "simworker_processing_seconds",
			Help:    "Time from a command's batch starting to its outcome published and the command acknowledged.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simworker_redeliveries_total",
			Help: "Commands delivered to the worker for the second time or more.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simworker_dead_letters_total",
			Help: "Commands that failed unexpectedly past their retries and went to SIM_DEADLETTER (outcome 500 internal).",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simworker_dependency_retries_total",
			Help: "Times the worker backed off because PostgreSQL or NATS failed (an outage, or a schema or privilege problem for an operator). A steady rise with no outcomes means it is stuck waiting.",
		}),
		ackFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simworker_ack_failures_total",
			Help: "Acknowledgements or NAKs of commands JetStream did not take; the command will be redelivered and its stored outcome re-published.",
		}),
	}
	reg.MustRegister(m.commands, m.latency, m.redelivered, m.deadLetters, m.unavailable, m.ackFailures)
	return m
}

// Outcome implements consumer.Observer.
func (m *Metrics) Outcome(o domain.Outcome, latency time.Duration) {
	m.commands.WithLabelValues(o.Type, string(o.Code)).Inc()
	m.latency.Observe(latency.Seconds())
}

// Redelivered implements consumer.Observer.
func (m *Metrics) Redelivered() { m.redelivered.Inc() }

// DeadLetter implements consumer.Observer.
func (m *Metrics) DeadLetter() { m.deadLetters.Inc() }

// Unavailable implements consumer.Observer.
func (m *Metrics) Unavailable() { m.unavailable.Inc() }

// AckFailed implements consumer.Observer.
func (m *Metrics) AckFailed() { m.ackFailures.Inc() }

// consumerCollector reads the durable consumer's state at scrape time.
type consumerCollector struct {
	js                               jetstream.JetStream
	pending, ackPending, redelivered *prometheus.Desc
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := c.js.Consumer(ctx, client.CommandsStream, client.DurableName)
	if err != nil {
		return // NATS down: the gauges are absent rather than wrong
	}
	info := cons.CachedInfo()
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending))
	ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending))
	ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(info.NumRedelivered))
}

// poolCollector reports the PostgreSQL pool's statistics.
type poolCollector struct {
	pool                                       *pgxpool.Pool
	acquired, idle, total, max, acquires, wait *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.wait} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.wait, prometheus.CounterValue, s.AcquireDuration().Seconds())
}

// Server is a process's HTTP endpoint for probes and metrics.
type Server struct {
	Metrics *Metrics
	Addr    string // the address it listens on, once started
	reg     *prometheus.Registry
	nc      *nats.Conn
	pool    *pgxpool.Pool
	ready   func() bool
	role    Role
	// BackingOff, when set, is the outage the process is waiting out (nil
	// error: none): /readyz's "deciding" check and simworker_backing_off.
	BackingOff func() (since time.Time, err error)
	srv        *httpserve.Server
	ln         net.Listener
}

// Role is what a process's third readiness check is about: the worker's
// consumer, or the API's events subscription.
type Role struct {
	Check   string // the check's name in /readyz
	Failing string // what /readyz says when it fails
	Worker  bool   // the worker: the consumer's gauges are this process's to report
}

// The roles of the two long-running programs.
var (
	WorkerRole = Role{Check: "consumer", Failing: "not consuming from the simworker consumer", Worker: true}
	APIRole    = Role{Check: "events", Failing: "not subscribed to sim.events.>"}
)

// New builds the worker's endpoint: metrics registered, nothing listening
// yet. ready reports whether the worker is bound to its consumer.
func New(nc *nats.Conn, js jetstream.JetStream, pool *pgxpool.Pool, ready func() bool) *Server {
	return NewFor(WorkerRole, nc, js, pool, ready)
}

// NewFor builds the endpoint of a process in role; ready is its third check.
func NewFor(role Role, nc *nats.Conn, js jetstream.JetStream, pool *pgxpool.Pool, ready func() bool) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if role.Worker {
		reg.MustRegister(&consumerCollector{js: js,
			pending:     prometheus.NewDesc("simworker_consumer_pending", "Commands in SIM_COMMANDS not yet delivered to the simworker consumer.", nil, nil),
			ackPending:  prometheus.NewDesc("simworker_consumer_ack_pending", "Commands delivered and not yet acknowledged.", nil, nil),
			redelivered: prometheus.NewDesc("simworker_consumer_redelivered", "Commands delivered more than once and not yet acknowledged.", nil, nil),
		})
	}
	reg.MustRegister(&poolCollector{pool: pool,
		acquired: prometheus.NewDesc("simworker_db_pool_acquired_conns", "PostgreSQL connections in use.", nil, nil),
		idle:     prometheus.NewDesc("simworker_db_pool_idle_conns", "Idle PostgreSQL connections.", nil, nil),
		total:    prometheus.NewDesc("simworker_db_pool_total_conns", "PostgreSQL connections open.", nil, nil),
		max:      prometheus.NewDesc("simworker_db_pool_max_conns", "Most PostgreSQL connections the pool opens.", nil, nil),
		acquires: prometheus.NewDesc("simworker_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil),
		wait:     prometheus.NewDesc("simworker_db_pool_acquire_seconds_total", "Time spent acquiring connections.", nil, nil),
	})
	s := &Server{reg: reg, nc: nc, pool: pool, ready: ready, role: role}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "simworker_ready",
		Help: "1 when every /readyz check of this process passes, else 0 (the checks run at each scrape).",
	}, func() float64 {
		for _, c := range s.Checks(context.Background()) {
			if !c.OK {
				return 0
			}
		}
		return 1
	}))
	if role.Worker {
		s.Metrics = NewMetrics(reg)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simworker_backing_off",
			Help: "1 while the worker waits out an outage (its last attempt at deciding or publishing failed with one and none succeeded since; /readyz says which), else 0.",
		}, func() float64 {
			if s.BackingOff != nil {
				if _, err := s.BackingOff(); err != nil {
					return 1
				}
			}
			return 0
		}))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.srv = httpserve.New(mux)
	s.CountConnections("ops", s.srv.Open)
	return s
}

// CountConnections reports the open connections of the process's HTTP
// server named server ("api", "ops") as simworker_http_open_connections.
func (s *Server) CountConnections(server string, open func() int64) {
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "simworker_http_open_connections",
		Help:        "Connections an HTTP server of this process holds open (server api or ops); one that stalls is closed within a minute.",
		ConstLabels: prometheus.Labels{"server": server},
	}, func() float64 { return float64(open()) }))
}

// Registry is where the process's own metrics go (the API's).
func (s *Server) Registry() prometheus.Registerer { return s.reg }

// Check is one readiness condition and what is wrong with it.
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Checks runs the readiness checks.
func (s *Server) Checks(ctx context.Context) []Check {
	checks := []Check{{Name: "nats", OK: s.nc.IsConnected()}, {Name: "postgres"}, {Name: s.role.Check, OK: s.ready()}}
	if !checks[0].OK {
		checks[0].Error = "not connected: " + s.nc.Status().String()
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(pctx); err != nil {
		checks[1].Error = "unreachable"
		var timeout interface{ Timeout() bool }
		if errors.As(err, &timeout) && timeout.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			checks[1].Error = "no answer within 2s"
		}
	} else {
		checks[1].OK = true
	}
	if !checks[2].OK {
		checks[2].Error = s.role.Failing
	}
	if s.BackingOff != nil {
		c := Check{Name: "deciding", OK: true}
		if since, err := s.BackingOff(); err != nil {
			c.OK, c.Error = false, fmt.Sprintf("backing off for %s: %s", time.Since(since).Round(time.Second), trimError(err.Error()))
		}
		checks = append(checks, c)
	}
	return checks
}

// trimError keeps a readiness error short: its first line, at most 300
// bytes.
func trimError(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := s.Checks(r.Context())
	status := http.StatusOK
	for _, c := range checks {
		if !c.OK {
			status = http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": status == http.StatusOK, "checks": checks})
}

// Start listens on addr (host:port; port 0 picks a free one) and serves in
// the background.
func (s *Server) Start(addr string, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.Error(err))
		}
	}()
	log.Info("serving /healthz, /readyz and /metrics", zap.String("addr", s.Addr))
	return nil
}

// Stop shuts the endpoint down.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
