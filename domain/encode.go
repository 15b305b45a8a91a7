package domain

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Events are encoded by hand: encoding/json re-validates and compacts every
// json.RawMessage it meets (the metadata, then the whole data again), which
// made encoding the largest cost of the worker. TestEncodeMatchesEncodingJSON
// holds these to encoding/json's output, value for value.

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// (HTML-safe, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			switch r {
			case utf8.RuneError:
				b = append(b, `\ufffd`...)
			default:
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// encodeSim is json.Marshal(sim) for a Sim whose SimMetadata is compact.
func encodeSim(b []byte, s Sim) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, s.ID)
	b = append(b, `,"company_id":`...)
	b = appendString(b, s.CompanyID)
	b = append(b, `,"device_id":`...)
	b = appendString(b, s.DeviceID)
	b = append(b, `,"mno_integration_id":`...)
	b = appendOptString(b, s.MNOIntegrationID)
	b = append(b, `,"iccid":`...)
	b = appendString(b, s.ICCID)
	b = append(b, `,"msisdn":`...)
	b = appendOptString(b, s.MSISDN)
	b = append(b, `,"status":`...)
	b = appendString(b, s.Status)
	b = append(b, `,"communication_plan":`...)
	b = appendOptString(b, s.CommunicationPlan)
	b = append(b, `,"rate_plan":`...)
	b = appendOptString(b, s.RatePlan)
	b = append(b, `,"sim_metadata":`...)
	b = append(b, s.SimMetadata...)
	b = append(b, `,"ctd_data_usage":`...)
	b = strconv.AppendInt(b, s.CtdDataUsage, 10)
	b = append(b, `,"ctd_sms_usage":`...)
	b = strconv.AppendInt(b, s.CtdSMSUsage, 10)
	b = append(b, `,"included_usage":`...)
	b = strconv.AppendInt(b, s.IncludedUsage, 10)
	b = append(b, `,"overage_limit_reached":`...)
	b = strconv.AppendBool(b, s.OverageLimitReached)
	b = append(b, `,"sim_barred":`...)
	b = strconv.AppendBool(b, s.SimBarred)
	b = append(b, `,"last_sync_at":`...)
	if s.LastSyncAt == nil {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, *s.LastSyncAt)
	}
	b = append(b, `,"created_at":`...)
	b = appendTime(b, s.CreatedAt)
	b = append(b, `,"created_by":`...)
	b = appendString(b, s.CreatedBy)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, s.UpdatedAt)
	b = append(b, `,"updated_by":`...)
	b = appendString(b, s.UpdatedBy)
	return append(b, '}')
}

// encodeEvent is json.Marshal(ev) for an event whose Data is compact.
func encodeEvent(ev CloudEvent) []byte {
	b := appendEventHead(make([]byte, 0, 256+len(ev.Data)), ev)
	b = append(b, ev.Data...)
	return append(b, '}')
}

// appendEventHead appends the event up to and including `"data":`; the data
// and the closing brace are the caller's.
func appendEventHead(b []byte, ev CloudEvent) []byte {
	b = append(b, `{"specversion":`...)
	b = appendString(b, ev.SpecVersion)
	b = append(b, `,"id":`...)
	b = appendString(b, ev.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, ev.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, ev.Type)
	if ev.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, ev.Subject)
	}
	b = append(b, `,"time":`...)
	b = appendString(b, ev.Time)
	b = append(b, `,"datacontenttype":`...)
	b = appendString(b, ev.DataContentType)
	b = append(b, `,"commandid":`...)
	b = appendString(b, ev.CommandID)
	if ev.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendString(b, ev.TraceParent)
	}
	return append(b, `,"data":`...)
}

// WithTraceParent returns o with its event's traceparent attribute set to
// tp (W3C Trace Context), between commandid and data, as the encoder puts
// it; o unchanged when tp is empty or o's event already has one.
func (o Outcome) WithTraceParent(tp string) Outcome {
	const data = `,"data":`
	i := bytes.Index(o.Event, []byte(data)) // attributes before data are this encoder's: the first is the key
	if tp == "" || i < 0 || bytes.Contains(o.Event[:i], []byte(`,"traceparent":`)) {
		return o
	}
	ev := make([]byte, 0, len(o.Event)+len(tp)+20)
	ev = append(ev, o.Event[:i]...)
	ev = append(ev, `,"traceparent":`...)
	ev = appendString(ev, tp)
	o.Event = append(ev, o.Event[i:]...)
	return o
}

// EventCommandID is the commandid attribute of an event; "" when it has none
// or is no event. It reads only what it needs from an event this package
// encoded (commandid comes before data, so nothing in the SIM can be taken
// for it) and decodes the whole event only when the id holds an escape.
func EventCommandID(event []byte) string {
	const attr = `,"commandid":"`
	if i := bytes.Index(event, []byte(attr)); i >= 0 {
		rest := event[i+len(attr):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return string(rest[:j])
		}
	}
	var head struct {
		CommandID string `json:"commandid"`
	}
	if json.Unmarshal(event, &head) != nil {
		return ""
	}
	return head.CommandID
}
