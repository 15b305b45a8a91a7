package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"simworker/domain"
	"simworker/internal/httpserve"
)

// errorf is an error of the API's own with its status (0: the code's),
// one field at fault (field "" for none).
func errorf(status int, code domain.Code, field, reason string) *domain.Error {
	e := domain.Errorf(code, field, reason)
	e.Status = status
	return e
}

func unauthorized(reason string) *domain.Error {
	return domain.Errorf(domain.CodeUnauthorized, "", reason)
}

func unavailable(reason string, retryAfter int) *domain.Error {
	e := domain.Errorf(domain.CodeUnavailable, "", reason)
	e.RetryAfter = retryAfter
	return e
}

func rateLimited(reason string, retryAfter int) *domain.Error {
	e := domain.Errorf(domain.CodeRateLimited, "", reason)
	e.RetryAfter = max(1, retryAfter)
	return e
}

var errNotFound = domain.Errorf(domain.CodeNotFound, "", "not found")

// writeError is the one place an error becomes an answer (what the worker
// decided is answered as its event's data, writeRaw). A *domain.Error is
// answered with its status, or its code's (domain's one table), and the
// error body; one of the API's own 401s says WWW-Authenticate: Bearer (the
// worker's never reach here); RetryAfter becomes Retry-After. An error
// wrapping domain.ErrUnavailable is 503 (logged as a warning) and anything
// else 500 internal (logged as an error, the cause never in the body).
func writeError(w http.ResponseWriter, log *zap.Logger, err error) {
	var e *domain.Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, domain.ErrUnavailable):
		log.Warn("dependency unavailable", zap.Error(err))
		e = unavailable("a dependency is unavailable: try again", 2)
	default:
		log.Error("internal error", zap.Error(err))
		e = domain.Errorf(domain.CodeInternal, "", "internal error")
	}
	status := e.StatusOf()
	if e.Code == domain.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	fields := e.Fields
	if fields == nil {
		fields = []domain.FieldError{}
	}
	writeJSON(w, status, domain.Rejection{CommandID: "", Status: status, Code: e.Code, Message: e.Message, Errors: fields})
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only the API's own types come here
		status, body = http.StatusInternalServerError, []byte(`{"command_id":"","status":500,"code":"internal","message":"internal error","errors":[]}`)
	}
	writeRaw(w, status, body)
}

// writeRaw answers with a JSON body as it is (an event's data, byte for
// byte). No answer is cached (each is one caller's) nor sniffed as anything
// but JSON; a client has httpserve.WriteTimeout to read it from now,
// however long the request waited for its outcome.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	httpserve.AnswerDeadline(w)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// allowedMethods lists the methods mux serves for r's path, for a 405's Allow.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// routed serves mux, answering an unknown path with a JSON 404 and a known
// path with another method with a JSON 405 and its Allow header.
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		if allowed := allowedMethods(mux, r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, nil, domain.Errorf(domain.CodeMethodNotAllowed, "", r.Method+" is not allowed here"))
			return
		}
		writeError(w, nil, errNotFound)
	})
}

// NotFound answers 404 with the error body: for handlers mounted beside the
// API (the reference documents) that meet an unknown path.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeError(w, nil, errNotFound) })
}
