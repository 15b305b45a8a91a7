package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"simworker/client"
	"simworker/domain"
)

// commandState is GET /v1/commands/{command_id}'s answer.
type commandState struct {
	CommandID string          `json:"command_id"`
	State     string          `json:"state"` // pending, created or rejected
	Sim       json.RawMessage `json:"sim"`
	Rejection json.RawMessage `json:"rejection"`
}

// getCommand is GET /v1/commands/{command_id}: the state of a command the
// caller made through the API; another user's command or an unknown one is
// 404, alike.
func (s *Server) getCommand(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("command_id")
	if !wellFormedID(id) {
		writeError(w, s.log, errNotFound)
		return
	}
	ctx, cancel := withDB(r.Context())
	defer cancel()
	mine, err := s.app.CommandOf(ctx, id, callerOf(r.Context()).userID)
	if err != nil {
		s.fail(w, "look the command up", err)
		return
	}
	if !mine {
		writeError(w, s.log, errNotFound)
		return
	}
	o, err := s.app.StoredOutcome(ctx, id)
	if err != nil {
		s.fail(w, "read the stored outcome", err)
		return
	}
	st := commandState{CommandID: id, State: "pending", Sim: json.RawMessage("null"), Rejection: json.RawMessage("null")}
	if o != nil {
		ev, err := client.ParseEvent(o.Event)
		if err != nil {
			s.fail(w, "read the outcome event", err)
			return
		}
		if ev.Type == domain.TypeCreated {
			st.State, st.Sim = "created", ev.Data
		} else {
			st.State, st.Rejection = "rejected", ev.Data
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// wellFormedID reports whether a path parameter can name a command: 1 to
// 128 characters of valid UTF-8, none of them a control character. Anything
// else is an unknown id (404), never sent to PostgreSQL, which refuses
// invalid UTF-8 with an error that would be a 500.
func wellFormedID(id string) bool {
	if id == "" || !utf8.ValidString(id) || utf8.RuneCountInString(id) > domain.MaxCommandIDLen {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// getSim is GET /v1/sims/{id}: the SIM when the caller holds sims:read or
// sims:create on its company or an ancestor; otherwise 404, exactly as for
// an unknown id or one that is not a UUID.
func (s *Server) getSim(w http.ResponseWriter, r *http.Request) {
	text := r.PathValue("id")
	id, err := uuid.Parse(text)
	if err != nil || len(text) != 36 { // the canonical form only, as the API gives it
		writeError(w, s.log, errNotFound)
		return
	}
	if id.String() != strings.ToLower(text) {
		writeError(w, s.log, errNotFound)
		return
	}
	ctx, cancel := withDB(r.Context())
	defer cancel()
	sim, err := s.app.VisibleSim(ctx, id.String(), callerOf(r.Context()).userID)
	if err != nil {
		s.fail(w, "read the SIM", err)
		return
	}
	if sim == nil {
		writeError(w, s.log, errNotFound)
		return
	}
	writeJSON(w, http.StatusOK, sim)
}
