package domain

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the contract.
const (
	MaxCommandIDLen      = 128
	MinICCIDLen          = 18
	MaxICCIDLen          = 22
	MaxMSISDNLen         = 20
	MaxStatusLen         = 30
	MaxPlanLen           = 255
	MaxMetadataKeys      = 50
	MaxMetadataDepth     = 16   // nesting levels of objects and arrays, the top object being 1
	MaxMetadataTotalKeys = 1000 // object keys at every level together
	MaxBodyBytes         = 65536
	DefaultStatus        = "inactive"
	PermissionCreateSIM  = "sims:create"
	PermissionReadSIM    = "sims:read"
)

// SimInput is the `sim` object of a Create-SIM command after validation.
// Optional strings are nil when absent or null.
type SimInput struct {
	DeviceID          string
	MNOIntegrationID  *string
	ICCID             string
	MSISDN            *string
	Status            string // DefaultStatus when absent or null
	CommunicationPlan *string
	RatePlan          *string
	// SimMetadata is a compact JSON object, `{}` when absent or null. Numbers
	// are kept as written (never through float64).
	SimMetadata json.RawMessage
}

// Sim is the SIM in made from in, with id, for a device of companyID, by
// actorID at now: every other field as the sims table's defaults make it,
// so the SIM is the stored row, byte for byte in its event.
func (in *SimInput) Sim(id, companyID, actorID string, now time.Time) Sim {
	return Sim{ID: id, CompanyID: companyID, DeviceID: in.DeviceID, MNOIntegrationID: in.MNOIntegrationID,
		ICCID: in.ICCID, MSISDN: in.MSISDN, Status: in.Status, CommunicationPlan: in.CommunicationPlan, RatePlan: in.RatePlan,
		SimMetadata: in.SimMetadata, CreatedAt: now, CreatedBy: actorID, UpdatedAt: now, UpdatedBy: actorID}
}

// Command is a Create-SIM command whose envelope passed checks 1 to 3.
type Command struct {
	ID      string
	ActorID string
	Sim     SimInput
}

// Envelope is a decoded command body. CommandID is empty when check 1 failed;
// Reject is set when any of checks 1 to 3 failed, and then Command is only
// partly filled. A stored outcome for CommandID, when there is one, takes
// precedence over Reject: the same command id always yields the same outcome.
type Envelope struct {
	CommandID string
	Command   Command
	Reject    *Error
	// TraceParent, set by the transport, goes into the outcome event as its
	// traceparent attribute (W3C Trace Context); empty for none.
	TraceParent string
}

// ParseCommand decodes a command body and runs the checks that need no
// database, in the contract's order:
//
//  1. the body is a JSON object with a valid command_id (400 invalid_argument, no fields)
//  2. actor_id is a non-empty string (401 unauthorized)
//  3. sim is a JSON object and every SimInput rule holds (400 invalid_argument,
//     every field at fault listed)
//
// It never panics, whatever the input.
func ParseCommand(body []byte) Envelope {
	if len(body) > MaxBodyBytes {
		// Bound what one command may cost: not even decoded.
		return Envelope{Reject: &Error{Code: CodeInvalidArgument,
			Message: "body is " + strconv.Itoa(len(body)) + " bytes; at most " + strconv.Itoa(MaxBodyBytes)}}
	}
	if !utf8.Valid(body) {
		return Envelope{Reject: &Error{Code: CodeInvalidArgument, Message: "body is not valid UTF-8 JSON"}}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Envelope{Reject: &Error{Code: CodeInvalidArgument, Message: "body must be a JSON object"}}
	}
	if !json.Valid(body) {
		err := json.Unmarshal(body, new(any)) // only for its precise message
		return Envelope{Reject: &Error{Code: CodeInvalidArgument, Message: "body is not valid JSON: " + err.Error()}}
	}
	top, _ := splitObject(body)

	id, ok := jsonString(top.get("command_id"))
	if !ok || id == "" || utf8.RuneCountInString(id) > MaxCommandIDLen || strings.ContainsRune(id, 0) {
		return Envelope{Reject: &Error{Code: CodeInvalidArgument,
			Message: "command_id: must be a string of 1 to 128 characters"}}
	}
	env := Envelope{CommandID: id, Command: Command{ID: id}}

	actor, ok := jsonString(top.get("actor_id"))
	if !ok || actor == "" || strings.ContainsRune(actor, 0) {
		env.Reject = &Error{Code: CodeUnauthorized, Message: "actor_id: must be a non-empty string"}
		return env
	}
	env.Command.ActorID = actor

	sim, fields := validateSim(top.get("sim"))
	if len(fields) > 0 {
		env.Reject = fieldsError(fields)
		return env
	}
	env.Command.Sim = sim
	return env
}

// validateSim checks a raw `sim` value (valid JSON) against every SimInput
// rule and returns all field errors at once. Read-only and unknown fields are
// ignored.
func validateSim(raw json.RawMessage) (SimInput, []FieldError) {
	var in SimInput
	obj, ok := splitObject(raw)
	if !ok {
		return in, []FieldError{{Field: "sim", Reason: "must be a JSON object"}}
	}

	var errs []FieldError
	fail := func(field, reason string) { errs = append(errs, FieldError{Field: field, Reason: reason}) }

	if s, reason := stringField(obj.get("device_id"), true, 0); reason != "" {
		fail("device_id", reason)
	} else {
		in.DeviceID = *s
	}
	if s, reason := stringField(obj.get("mno_integration_id"), false, 0); reason != "" {
		fail("mno_integration_id", reason)
	} else {
		in.MNOIntegrationID = s
	}
	if s, reason := stringField(obj.get("iccid"), true, 0); reason != "" {
		fail("iccid", reason)
	} else if reason := iccidReason(*s); reason != "" {
		fail("iccid", reason)
	} else {
		in.ICCID = *s
	}
	if s, reason := stringField(obj.get("msisdn"), false, MaxMSISDNLen); reason != "" {
		fail("msisdn", reason)
	} else {
		in.MSISDN = s
	}
	if s, reason := stringField(obj.get("status"), false, MaxStatusLen); reason != "" {
		fail("status", reason)
	} else if s == nil {
		in.Status = DefaultStatus
	} else {
		in.Status = *s
	}
	if s, reason := stringField(obj.get("communication_plan"), false, MaxPlanLen); reason != "" {
		fail("communication_plan", reason)
	} else {
		in.CommunicationPlan = s
	}
	if s, reason := stringField(obj.get("rate_plan"), false, MaxPlanLen); reason != "" {
		fail("rate_plan", reason)
	} else {
		in.RatePlan = s
	}
	if md, reason := metadataField(obj.get("sim_metadata")); reason != "" {
		fail("sim_metadata", reason)
	} else {
		in.SimMetadata = md
	}
	return in, errs
}

func iccidReason(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "must contain only the digits 0-9"
		}
	}
	if len(s) < MinICCIDLen || len(s) > MaxICCIDLen {
		return "must be 18 to 22 digits"
	}
	return ""
}

// isNull reports whether raw is absent or the JSON literal null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func isJSONObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{'
}

// jsonString decodes raw when it is a JSON string (raw is valid JSON). A
// string with an unpaired surrogate escape is no string the worker can keep
// as sent: false, as for a value of another type.
func jsonString(raw json.RawMessage) (string, bool) {
	s, ok, lone := decodeJSONString(raw)
	return s, ok && !lone
}

// decodeJSONString decodes raw when it is a JSON string, and says whether it
// escapes an unpaired UTF-16 surrogate.
func decodeJSONString(raw json.RawMessage) (s string, isString, lone bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return "", false, false
	}
	end, escaped, _ := skipString(t, 0)
	return decodeString(t[:end], escaped), true, escaped && loneSurrogate(t[:end])
}

// stringField validates an optional or required string field; maxLen 0 means
// no length rule. It returns nil for an absent or null optional field, and a
// reason when the value breaks a rule.
func stringField(raw json.RawMessage, required bool, maxLen int) (*string, string) {
	if isNull(raw) {
		if required {
			return nil, "is required"
		}
		return nil, ""
	}
	s, ok, lone := decodeJSONString(raw)
	switch {
	case !ok:
		return nil, "must be a string"
	case lone:
		return nil, "must not contain unpaired UTF-16 surrogates"
	case required && s == "":
		return nil, "is required"
	case strings.ContainsRune(s, 0):
		return nil, "must not contain NUL characters"
	case maxLen > 0 && utf8.RuneCountInString(s) > maxLen:
		return nil, "must be at most " + strconv.Itoa(maxLen) + " characters"
	}
	return &s, ""
}
