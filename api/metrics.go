package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the API answers.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	outcomes *prometheus.CounterVec
	pending  prometheus.Counter
	refused  prometheus.Counter
}

// NewMetrics registers the API's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simworker_api_requests_total",
			Help: "HTTP requests answered, by route (the matched pattern, or unmatched) and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "simworker_api_request_seconds",
			Help:    "Time from a request's arrival to its answer, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simworker_api_outcomes_total",
			Help: "Outcomes a POST /v1/sims answered with, by type (sim.created, sim.rejected) and how it got them (event: waited for; stored: read from PostgreSQL).",
		}, []string{"type", "via"}),
		pending: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simworker_api_pending_total",
			Help: "202 answers: no outcome within SIM_API_WAIT (is a worker running?).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simworker_api_unavailable_total",
			Help: "503 answers: a command could not be published or a dependency could not be reached.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.outcomes, m.pending, m.refused)
	return m
}

// statusRecorder remembers the status written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// instrument counts each request under its route and status.
func (m *Metrics) instrument(mux *http.ServeMux, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, route := mux.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		switch rec.status {
		case http.StatusAccepted:
			m.pending.Inc()
		case http.StatusServiceUnavailable:
			m.refused.Inc()
		}
	})
}

// outcome counts an outcome a request answered with.
func (m *Metrics) outcome(typ, via string) {
	if m != nil {
		m.outcomes.WithLabelValues(typ, via).Inc()
	}
}
