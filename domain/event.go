package domain

import (
	"encoding/json"
	"errors"
	"time"
)

// Event types and the CloudEvents attributes of the contract. The NATS
// names (subjects, streams, headers) are package client's.
const (
	TypeCreated     = "sim.created"
	TypeRejected    = "sim.rejected"
	SpecVersion     = "1.0"
	DefaultSource   = "simworker"
	ContentTypeJSON = "application/json"
)

// Sim is the stored SIM record, as carried in sim.created data and as the
// columns of the sims table.
type Sim struct {
	ID                  string          `json:"id"`
	CompanyID           string          `json:"company_id"`
	DeviceID            string          `json:"device_id"`
	MNOIntegrationID    *string         `json:"mno_integration_id"`
	ICCID               string          `json:"iccid"`
	MSISDN              *string         `json:"msisdn"`
	Status              string          `json:"status"`
	CommunicationPlan   *string         `json:"communication_plan"`
	RatePlan            *string         `json:"rate_plan"`
	SimMetadata         json.RawMessage `json:"sim_metadata"`
	CtdDataUsage        int64           `json:"ctd_data_usage"`
	CtdSMSUsage         int64           `json:"ctd_sms_usage"`
	IncludedUsage       int64           `json:"included_usage"`
	OverageLimitReached bool            `json:"overage_limit_reached"`
	SimBarred           bool            `json:"sim_barred"`
	LastSyncAt          *time.Time      `json:"last_sync_at"`
	CreatedAt           time.Time       `json:"created_at"`
	CreatedBy           string          `json:"created_by"`
	UpdatedAt           time.Time       `json:"updated_at"`
	UpdatedBy           string          `json:"updated_by"`
}

// Rejection is sim.rejected data.
type Rejection struct {
	CommandID string       `json:"command_id"`
	Status    int          `json:"status"`
	Code      Code         `json:"code"`
	Message   string       `json:"message"`
	Errors    []FieldError `json:"errors"`
}

// NewRejection turns an Error into sim.rejected data; errors is never null.
func NewRejection(commandID string, e *Error) Rejection {
	fields := e.Fields
	if fields == nil {
		fields = []FieldError{}
	}
	return Rejection{CommandID: commandID, Status: e.StatusOf(), Code: e.Code, Message: e.Message, Errors: fields}
}

// CloudEvent is a CloudEvents 1.0 event in structured JSON mode, with the
// commandid extension attribute.
type CloudEvent struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject,omitempty"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	CommandID       string `json:"commandid"`
	// TraceParent is the CloudEvents distributed tracing extension: the W3C
	// traceparent of the worker's span that decided the command (absent
	// when the command carried no trace and the worker records none).
	TraceParent string          `json:"traceparent,omitempty"`
	Data        json.RawMessage `json:"data"`
}

// Outcome is the one result of a command: the event to publish (stored
// byte for byte and re-published unchanged) and what it says.
type Outcome struct {
	CommandID string
	EventID   string
	Type      string // TypeCreated or TypeRejected
	Status    int    // 201 for created, else the rejection status
	Code      Code   // empty for created
	SimID     string // empty for rejected
	Event     []byte // the CloudEvent JSON
	// Replayed is true when the outcome was stored by an earlier delivery.
	Replayed bool
}

// FormatTime renders event and record times: RFC 3339 in UTC with
// microseconds, PostgreSQL's precision, so a stored time reads back equal.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

// NewCreated builds the sim.created outcome for a stored SIM. Its metadata
// is a JSON object as PostgreSQL's jsonb prints it, as ParseCommand gives
// it: not validated again here (it is most of the event), only checked to
// be an object.
func NewCreated(source, eventID, commandID string, sim Sim) (Outcome, error) {
	if md := sim.SimMetadata; len(md) < 2 || md[0] != '{' || md[len(md)-1] != '}' {
		return Outcome{}, errors.New("sim_metadata is not a JSON object")
	}
	// One buffer for the event and its data, which is most of it.
	ev := appendEventHead(make([]byte, 0, 1024+len(sim.SimMetadata)), CloudEvent{
		SpecVersion: SpecVersion, ID: eventID, Source: source, Type: TypeCreated, Subject: sim.ID,
		Time: FormatTime(sim.CreatedAt), DataContentType: ContentTypeJSON, CommandID: commandID,
	})
	ev = append(encodeSim(ev, sim), '}')
	return Outcome{CommandID: commandID, EventID: eventID, Type: TypeCreated, Status: 201, SimID: sim.ID, Event: ev}, nil
}

// NewRejected builds the sim.rejected outcome. commandID is empty when the
// body had no valid command id; the event then has no subject.
func NewRejected(source, eventID, commandID string, at time.Time, e *Error) Outcome {
	data, _ := json.Marshal(NewRejection(commandID, e)) // strings and ints only: cannot fail
	ev := encodeEvent(CloudEvent{
		SpecVersion: SpecVersion, ID: eventID, Source: source, Type: TypeRejected, Subject: commandID,
		Time: FormatTime(at), DataContentType: ContentTypeJSON, CommandID: commandID, Data: data,
	})
	return Outcome{CommandID: commandID, EventID: eventID, Type: TypeRejected, Status: e.StatusOf(), Code: e.Code, Event: ev}
}
