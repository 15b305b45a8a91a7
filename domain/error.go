// Package domain is the vocabulary of the SIM worker: the Create-SIM command,
// the SimInput rules, the stored SIM, the two outcome events and the error
// codes of the contract. It imports only the standard library; repo/ and
// consumer/ depend on it, never the reverse.
package domain

import (
	"errors"
	"strings"
	"time"
)

// Code is the machine-readable rejection code carried in sim.rejected data.
type Code string

// The codes of the contract: those of the check table (the worker's
// rejections), then those only the HTTP API answers with (section 5).
const (
	CodeInvalidArgument Code = "invalid_argument"
	CodeUnauthorized    Code = "unauthorized"
	CodeNotFound        Code = "not_found"
	CodeAlreadyExists   Code = "already_exists"
	CodeInternal        Code = "internal"

	CodeRateLimited          Code = "rate_limited"
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	CodeUnavailable          Code = "unavailable"
	CodeMethodNotAllowed     Code = "method_not_allowed"
)

// statusOf is the one table of codes and statuses: the seed API's status
// of each code, in events and HTTP answers alike.
var statusOf = map[Code]int{
	CodeInvalidArgument:      400,
	CodeAlreadyExists:        400,
	CodeUnauthorized:         401,
	CodeNotFound:             404,
	CodeInternal:             500,
	CodeRateLimited:          429,
	CodeIdempotencyKeyReused: 422,
	CodeUnavailable:          503,
	CodeMethodNotAllowed:     405,
}

// Status is the status of a code; 500 for a code the contract does not
// name.
func (c Code) Status() int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return 500
}

// FieldError names one field at fault and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is the one error type of the domain: a code, a human message and the
// fields at fault (possibly none). Status, when not 0, overrides the code's
// (the HTTP API's 413 and 415 are invalid_argument too); RetryAfter, when
// not 0, is how many seconds a client should wait before trying again.
type Error struct {
	Code       Code
	Message    string
	Fields     []FieldError
	Status     int
	RetryAfter int
}

// StatusOf is the status of an Error: its own, or its code's.
func (e *Error) StatusOf() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status()
}

// Errorf is an Error with one field at fault, named in its message (field
// "" for none): "field: reason".
func Errorf(code Code, field, reason string) *Error {
	e := &Error{Code: code, Message: reason}
	if field != "" {
		e.Message = field + ": " + reason
		e.Fields = []FieldError{{Field: field, Reason: reason}}
	}
	return e
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// fieldsError builds an invalid_argument Error listing every field at fault,
// its message joining them in order.
func fieldsError(fields []FieldError) *Error {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return &Error{Code: CodeInvalidArgument, Message: strings.Join(parts, "; "), Fields: fields}
}

// ErrorCode returns the code of err when it is (or wraps) an *Error, and
// CodeInternal for anything else: an unknown failure is never a client's fault.
func ErrorCode(err error) Code {
	var de *Error
	if errors.As(err, &de) {
		return de.Code
	}
	return CodeInternal
}

// ErrUnavailable marks a failure of a dependency (PostgreSQL, NATS) that
// retrying can cure. Such a failure is never an outcome: the worker backs off
// and tries again. Wrap it with fmt.Errorf("%w: ...", ErrUnavailable).
var ErrUnavailable = errors.New("dependency unavailable")

// errInternalFailure is the rejection of a command that failed unexpectedly
// past its retries. Its message never carries the cause: that goes to the
// logs and the dead letter, not to subscribers.
var errInternalFailure = &Error{Code: CodeInternal, Message: "internal error: the command could not be processed"}

// InternalEnvelope is the envelope that gives commandID its 500 internal
// outcome through the ordinary decision path: deciding it stores that
// rejection, unless an outcome is stored already, which wins as always.
func InternalEnvelope(commandID string) Envelope {
	return Envelope{CommandID: commandID, Command: Command{ID: commandID}, Reject: errInternalFailure}
}

// NewInternal is the 500 internal outcome of commandID, decided at at: for
// a command whose stored outcome cannot be published (its event refused by
// the server for its size).
func NewInternal(source, eventID, commandID string, at time.Time) Outcome {
	return NewRejected(source, eventID, commandID, at, errInternalFailure)
}

// The rejections of checks 4, 6 and 7 of the contract; check 5's names the
// company, see ErrUnauthorized.
var (
	// ErrDeviceNotFound: check 4, 404 not_found, field device_id.
	ErrDeviceNotFound = &Error{Code: CodeNotFound, Message: "device_id: device not found",
		Fields: []FieldError{{Field: "device_id", Reason: "device not found"}}}
	// ErrMNONotFound: check 6, 404 not_found, field mno_integration_id.
	ErrMNONotFound = &Error{Code: CodeNotFound,
		Message: "mno_integration_id: MNO integration not found for the SIM's company",
		Fields:  []FieldError{{Field: "mno_integration_id", Reason: "MNO integration not found for the SIM's company"}}}
	// ErrICCIDTaken: check 7, 400 already_exists, field iccid.
	ErrICCIDTaken = &Error{Code: CodeAlreadyExists, Message: "iccid: already taken",
		Fields: []FieldError{{Field: "iccid", Reason: "already taken"}}}
)

// ErrUnauthorized is the rejection of check 5 for a SIM of companyID: 401
// unauthorized, no field at fault.
func ErrUnauthorized(companyID string) *Error {
	return &Error{Code: CodeUnauthorized,
		Message: "actor may not create SIMs for company " + companyID, Fields: []FieldError{}}
}
