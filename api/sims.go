package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"simworker/app"
	"simworker/client"
	"simworker/domain"
)

// tracerName names the API's spans' instrumentation scope.
const tracerName = "simworker/api"

// MaxBodyBytes bounds a POST /v1/sims body (check c): the command around it
// stays within what the worker decodes (domain.MaxBodyBytes).
const MaxBodyBytes = 61440

// createSim is POST /v1/sims: checks c to g, then the command and its
// outcome. Checks a and b (token, rate) are the middleware's.
func (s *Server) createSim(w http.ResponseWriter, r *http.Request) {
	// The request's span, the child of the caller's trace if it sent a
	// traceparent; the command carries it on to the worker.
	ctx, span := otel.GetTracerProvider().Tracer(tracerName).Start(
		client.TraceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header)), "POST /v1/sims",
		trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	r = r.WithContext(ctx)
	user := callerOf(r.Context()).userID
	body, e := readSimBody(r)
	if e != nil {
		writeError(w, s.log, e)
		return
	}
	key, e := idempotencyKey(r.Header)
	if e != nil {
		writeError(w, s.log, e)
		return
	}
	sum := sha256.Sum256(body)
	rec, err := s.records.record(r.Context(), app.CommandRequest{UserID: user, Key: key, BodyHash: sum[:],
		CommandID: "api-" + uuid.Must(uuid.NewV7()).String()})
	cmd, created := rec.Command, rec.Created
	if err != nil {
		s.fail(w, "record the command", err)
		return
	}
	if !created && !cmd.SameBody(sum[:]) { // check g
		writeError(w, s.log, errorf(0, domain.CodeIdempotencyKeyReused, "Idempotency-Key",
			"this key was used with another body: use a new key for a new request"))
		return
	}
	span.SetAttributes(attribute.String("simworker.command_id", cmd.CommandID), attribute.String("simworker.user", user))
	log := s.log.With(zap.String("command_id", cmd.CommandID), zap.String("user", user))
	if !created { // the key's command: its outcome, if decided before this request came
		ctx, cancel := withDB(r.Context())
		o, err := s.app.StoredOutcome(ctx, cmd.CommandID)
		cancel()
		if err != nil {
			s.fail(w, "read the stored outcome", err)
			return
		}
		if o != nil {
			s.answerStored(w, cmd.CommandID, o.Event, true)
			return
		}
	}
	envelope := commandBody(cmd.CommandID, user, body)
	if len(envelope) > domain.MaxBodyBytes {
		writeError(w, s.log, errorf(http.StatusRequestEntityTooLarge, domain.CodeInvalidArgument, "", "the body is too large"))
		return
	}
	events, cancel := s.waiter.wait(cmd.CommandID)
	defer cancel()
	// Published again for a key's retry: the first publish may never have
	// landed (a 503), and JetStream drops the copy of one that did.
	if err := s.publish(r.Context(), envelope, cmd.CommandID); err != nil {
		if client.Refused(err) { // the server's limits refuse this command whatever the retries
			log.Warn("command refused by NATS for its size", zap.Int("bytes", len(envelope)), zap.Error(err))
			writeError(w, s.log, errorf(http.StatusRequestEntityTooLarge, domain.CodeInvalidArgument, "",
				"the command is larger than the NATS server takes ("+strconv.Itoa(len(envelope))+" bytes)"))
			return
		}
		log.Warn("command not published", zap.Error(err))
		writeError(w, s.log, unavailable("the command could not be published: retry with the same Idempotency-Key", 2))
		return
	}
	log.Debug("command published", zap.Bool("new", created))
	s.await(w, r, cmd.CommandID, events)
}

// await answers with the command's outcome event, or 202 after the wait.
// The outcome was decided for this request (or one racing it on its key),
// not for an earlier one: no Idempotent-Replayed.
func (s *Server) await(w http.ResponseWriter, r *http.Request, commandID string, events <-chan client.Event) {
	t := time.NewTimer(s.cfg.Wait)
	defer t.Stop()
	select {
	case ev := <-events:
		s.answer(w, commandID, ev, "event", false)
		return
	case <-r.Context().Done():
		return // the client left; the command goes on
	case <-t.C:
	}
	// The event may have passed while this process was reconnecting: the
	// stored outcome is the truth.
	ctx, cancel := withDB(r.Context())
	defer cancel()
	o, err := s.app.StoredOutcome(ctx, commandID)
	if err != nil {
		s.fail(w, "read the stored outcome", err)
		return
	}
	if o != nil {
		s.answerStored(w, commandID, o.Event, false)
		return
	}
	w.Header().Set("Location", "/v1/commands/"+commandID)
	w.Header().Set("Sim-Command-Id", commandID)
	writeJSON(w, http.StatusAccepted, struct {
		CommandID string `json:"command_id"`
		State     string `json:"state"`
	}{commandID, "pending"})
}

// answerStored answers with a stored outcome event.
func (s *Server) answerStored(w http.ResponseWriter, commandID string, event []byte, replayed bool) {
	ev, err := client.ParseEvent(event)
	if err != nil {
		s.fail(w, "read the outcome event", err)
		return
	}
	s.answer(w, commandID, ev, "stored", replayed)
}

// answer turns an outcome event into the answer: 201 and the SIM, or the
// rejection's status and data; both exactly the event's data.
func (s *Server) answer(w http.ResponseWriter, commandID string, ev client.Event, via string, replayed bool) {
	s.cfg.Metrics.outcome(ev.Type, via)
	w.Header().Set("Sim-Command-Id", commandID)
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if ev.Type == domain.TypeCreated {
		w.Header().Set("Location", "/v1/sims/"+ev.SimID())
		writeRaw(w, http.StatusCreated, ev.Data)
		return
	}
	writeRaw(w, ev.Rejection().Status, ev.Data)
}

// publish sends the command, Nats-Msg-Id = its command id, and waits for
// JetStream's acknowledgement.
func (s *Server) publish(ctx context.Context, envelope []byte, commandID string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishAck)
	defer cancel()
	msg := client.CommandMsg(envelope, commandID)
	client.TraceContext.Inject(ctx, client.HeaderCarrier(msg.Header))
	_, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(client.CommandsStream))
	return err
}

// fail answers a failure of what it was doing: its error, wrapped with
// what, through writeError.
func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	writeError(w, s.log, fmt.Errorf("%s: %w", what, err))
}

// readSimBody runs checks c (size), d (content type) and e (a JSON object).
func readSimBody(r *http.Request) ([]byte, *domain.Error) {
	tooLarge := errorf(http.StatusRequestEntityTooLarge, domain.CodeInvalidArgument, "",
		"the body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, domain.CodeInvalidArgument, "", "the body could not be read")
	}
	if len(body) > MaxBodyBytes {
		return nil, tooLarge
	}
	if !jsonMediaType(r.Header.Get("Content-Type")) {
		return nil, errorf(http.StatusUnsupportedMediaType, domain.CodeInvalidArgument, "",
			"Content-Type must be application/json (or another +json type)")
	}
	if reason := notJSON(body); reason != "" {
		return nil, &domain.Error{Code: domain.CodeInvalidArgument, Message: reason,
			Fields: []domain.FieldError{{Field: "sim", Reason: reason}}}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if trimmed[0] != '{' {
		return nil, errorf(http.StatusBadRequest, domain.CodeInvalidArgument, "sim", "must be a JSON object")
	}
	return body, nil
}

// notJSON says what makes body no JSON text, and where; "" when it is one.
func notJSON(body []byte) string {
	const prefix = "the body is not valid JSON: "
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, size := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		return prefix + "invalid UTF-8 at byte " + strconv.Itoa(at)
	}
	if json.Valid(body) {
		return ""
	}
	err := json.Unmarshal(body, new(any))
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return prefix + syntax.Error() + " (at byte " + strconv.FormatInt(syntax.Offset, 10) + ")"
	}
	if err == nil {
		return prefix + "unexpected end of JSON input"
	}
	return prefix + err.Error()
}

// jsonMediaType: application/json or any +json type, parameters allowed.
func jsonMediaType(header string) bool {
	mt, _, err := mime.ParseMediaType(header)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// idempotencyKey is check f: absent (nil), or 1 to 128 printable ASCII
// characters.
func idempotencyKey(h http.Header) (*string, *domain.Error) {
	values := h.Values("Idempotency-Key")
	if len(values) == 0 {
		return nil, nil
	}
	bad := errorf(http.StatusBadRequest, domain.CodeInvalidArgument, "Idempotency-Key", "must be 1 to 128 printable ASCII characters, given once")
	key := values[0]
	if len(values) > 1 || key == "" || len(key) > 128 {
		return nil, bad
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return nil, bad
		}
	}
	return &key, nil
}

// commandBody is the command around a request's body, which is a JSON
// object, kept byte for byte as the sim.
func commandBody(commandID, user string, sim []byte) []byte {
	id, _ := json.Marshal(commandID)
	actor, _ := json.Marshal(user)
	b := make([]byte, 0, len(sim)+len(id)+len(actor)+40)
	b = append(append(append(b, `{"command_id":`...), id...), `,"actor_id":`...)
	b = append(append(append(b, actor...), `,"sim":`...), sim...)
	return append(b, '}')
}
