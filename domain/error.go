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

// The rejection codes of the contract's check table.
const (
	CodeInvalidArgument Code = "invalid_argument"
	CodeUnauthorized    Code = "unauthorized"
	CodeNotFound        Code = "not_found"
	CodeAlreadyExists   Code = "already_exists"
	CodeInternal        Code = "internal"
)

// Status is the HTTP-style status the seed API uses for a code.
func (c Code) Status() int {
	switch c {
	case CodeInvalidArgument, CodeAlreadyExists:
		return 400
	case CodeUnauthorized:
		return 401
	case CodeNotFound:
		return 404
	default:
		return 500
	}
}

// FieldError names one field at fault and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is the one error type of the domain: a code, a human message and the
// fields at fault (possibly none).
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
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
