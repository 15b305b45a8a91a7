package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"simworker/domain"
	"simworker/internal/httpserve"
)

// Codes of the HTTP API beyond the worker's (domain.Code).
const (
	CodeRateLimited          domain.Code = "rate_limited"
	CodeIdempotencyKeyReused domain.Code = "idempotency_key_reused"
	CodeUnavailable          domain.Code = "unavailable"
	CodeMethodNotAllowed     domain.Code = "method_not_allowed"
)

// statusOf is the status of each code the API answers with itself; a
// rejection decided by the worker carries its own status.
var statusOf = map[domain.Code]int{
	domain.CodeInvalidArgument: http.StatusBadRequest,
	domain.CodeUnauthorized:    http.StatusUnauthorized,
	domain.CodeNotFound:        http.StatusNotFound,
	domain.CodeInternal:        http.StatusInternalServerError,
	CodeRateLimited:            http.StatusTooManyRequests,
	CodeIdempotencyKeyReused:   http.StatusUnprocessableEntity,
	CodeUnavailable:            http.StatusServiceUnavailable,
	CodeMethodNotAllowed:       http.StatusMethodNotAllowed,
}

// Error is an answer the API gives before (or instead of) a command's
// outcome: its body has the shape of sim.rejected data, command_id "".
type Error struct {
	Status  int // 0: the code's status
	Code    domain.Code
	Message string
	Fields  []domain.FieldError
	Header  http.Header // extra headers: WWW-Authenticate, Retry-After, Allow
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// errorf builds an Error with one field at fault (field "" for none).
func errorf(status int, code domain.Code, field, reason string) *Error {
	e := &Error{Status: status, Code: code, Message: reason}
	if field != "" {
		e.Message = field + ": " + reason
		e.Fields = []domain.FieldError{{Field: field, Reason: reason}}
	}
	return e
}

// withHeader adds a header to the answer.
func (e *Error) withHeader(name, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Set(name, value)
	return e
}

func unauthorized(reason string) *Error {
	return errorf(http.StatusUnauthorized, domain.CodeUnauthorized, "", reason).withHeader("WWW-Authenticate", "Bearer")
}

func unavailable(reason string, retryAfter int) *Error {
	return errorf(http.StatusServiceUnavailable, CodeUnavailable, "", reason).withHeader("Retry-After", strconv.Itoa(retryAfter))
}

var errNotFound = errorf(http.StatusNotFound, domain.CodeNotFound, "", "not found")

// writeError is the one place an error becomes an answer: its status (the
// code's unless the error names one), its headers, and the error body.
func writeError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status == 0 {
		status = statusOf[e.Code]
	}
	for k, v := range e.Header {
		w.Header()[k] = v
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
			writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "",
				r.Method+" is not allowed here").withHeader("Allow", strings.Join(allowed, ", ")))
			return
		}
		writeError(w, errNotFound)
	})
}

// NotFound answers 404 with the error body: for handlers mounted beside the
// API (the reference documents) that meet an unknown path.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeError(w, errNotFound) })
}
