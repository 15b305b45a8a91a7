package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFactsCheckInOrder(t *testing.T) {
	t.Parallel()
	co := "co-a"
	tests := []struct {
		name  string
		facts Facts
		want  *Error
	}{
		{"all pass", Facts{CompanyID: &co, Allowed: true, MNOUsable: true}, nil},
		{"device not found beats permission and MNO", Facts{}, ErrDeviceNotFound},
		{"permission beats MNO", Facts{CompanyID: &co}, ErrUnauthorized(co)},
		{"MNO not found", Facts{CompanyID: &co, Allowed: true}, ErrMNONotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.facts.Check(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Check() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRejectionsOfChecks4To7(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    *Error
		status int
		code   Code
		fields []string
	}{
		{ErrDeviceNotFound, 404, CodeNotFound, []string{"device_id"}},
		{ErrUnauthorized("co-a"), 401, CodeUnauthorized, []string{}},
		{ErrMNONotFound, 404, CodeNotFound, []string{"mno_integration_id"}},
		{ErrICCIDTaken, 400, CodeAlreadyExists, []string{"iccid"}},
	}
	for _, tt := range tests {
		r := NewRejection("c-1", tt.err)
		fields := []string{}
		for _, f := range r.Errors {
			fields = append(fields, f.Field)
		}
		if r.Status != tt.status || r.Code != tt.code || !slices.Equal(fields, tt.fields) {
			t.Errorf("%s: %d %s %v, want %d %s %v", tt.err, r.Status, r.Code, fields, tt.status, tt.code, tt.fields)
		}
	}
	// Check 5 names the company in its message; its errors are [], not null.
	data, _ := json.Marshal(NewRejection("c-1", ErrUnauthorized("co-a")))
	if want := `"message":"actor may not create SIMs for company co-a","errors":[]`; !strings.Contains(string(data), want) {
		t.Errorf("unauthorized data %s, want it to contain %s", data, want)
	}
}

// cmd is an envelope that passed checks 1 to 3.
func cmd(id, iccid string) Envelope {
	return Envelope{CommandID: id, Command: Command{ID: id, ActorID: "u-1",
		Sim: SimInput{DeviceID: "d-1", ICCID: iccid, Status: DefaultStatus, SimMetadata: json.RawMessage(`{}`)}}}
}

var (
	company = "co-a"
	pass    = Facts{CompanyID: &company, Allowed: true, MNOUsable: true}
	noGrant = Facts{CompanyID: &company, MNOUsable: true}
	badMNO  = Facts{CompanyID: &company, Allowed: true}
)

// stored is an outcome an earlier transaction stored.
func stored(commandID string) Outcome {
	return NewRejected(DefaultSource, "stored-"+commandID, commandID, time.Unix(0, 0), ErrMNONotFound)
}

// decideRun is what a run of a Batch's steps did.
type decideRun struct {
	outs  []string // per envelope: event id, status, code, field at fault, replayed
	asked []string // the commands whose facts Plan asked for
	cands []string // the commands Decide gave a SIM to insert
}

// runBatch takes envs through a Batch's steps as repo does, with the
// database's answers made up: facts by command id, and taken the ICCIDs
// another transaction holds (their insert stores nothing).
func runBatch(t *testing.T, envs []Envelope, prev []Outcome, facts map[string]Facts, taken ...string) decideRun {
	t.Helper()
	var run decideRun
	b, err := NewBatch(envs)
	if err != nil {
		t.Fatal(err)
	}
	var fs []Facts
	for _, c := range b.Asks() {
		run.asked = append(run.asked, c.ID)
		f, ok := facts[c.ID]
		if !ok {
			t.Fatalf("facts of %s asked for, none given", c.ID)
		}
		fs = append(fs, f)
	}
	b.Plan(prev)
	var inserted []Sim
	for _, c := range b.Decide(fs) {
		run.cands = append(run.cands, c.Command.ID)
		if !slices.Contains(taken, c.Command.Sim.ICCID) {
			inserted = append(inserted, Sim{ID: "sim-" + c.Command.ID, CompanyID: c.CompanyID, DeviceID: c.Command.Sim.DeviceID,
				ICCID: c.Command.Sim.ICCID, Status: c.Command.Sim.Status, SimMetadata: c.Command.Sim.SimMetadata})
		}
	}
	slices.Reverse(inserted) // RETURNING promises no order
	decided := b.Settle(inserted)
	fresh := make([]Outcome, len(decided))
	for k, d := range decided {
		if (d.Reject == nil) == (d.Sim == nil) {
			t.Fatalf("decision on %s: reject %v, sim %v: want exactly one", d.CommandID, d.Reject, d.Sim)
		}
		if d.Reject != nil {
			fresh[k] = NewRejected(DefaultSource, "ev-"+d.CommandID, d.CommandID, time.Unix(0, 0), d.Reject)
		} else if fresh[k], err = NewCreated(DefaultSource, "ev-"+d.CommandID, d.CommandID, *d.Sim); err != nil {
			t.Fatal(err)
		}
	}
	outs := b.Outcomes(fresh)
	if len(outs) != len(envs) {
		t.Fatalf("%d outcomes for %d envelopes", len(outs), len(envs))
	}
	for i, o := range outs {
		if o.CommandID != envs[i].CommandID {
			t.Fatalf("outcome %d is of %s, want %s", i, o.CommandID, envs[i].CommandID)
		}
		run.outs = append(run.outs, describe(t, o))
	}
	return run
}

func describe(t *testing.T, o Outcome) string {
	t.Helper()
	var ev struct {
		Data struct {
			Errors []FieldError `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(o.Event, &ev); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%s %d", o.EventID, o.Status)
	if o.Code != "" {
		s += " " + string(o.Code)
	}
	for _, f := range ev.Data.Errors {
		s += " " + f.Field
	}
	if o.Replayed {
		s += " replayed"
	}
	return s
}

func TestBatchDecidesAsOneAtATime(t *testing.T) {
	t.Parallel()
	const x, y = "8944500102198304826", "8944500102198304834"
	tests := []struct {
		name  string
		envs  []Envelope
		prev  []Outcome
		facts map[string]Facts
		taken []string // ICCIDs another transaction holds
		want  decideRun
	}{
		{name: "new command passing every check is created",
			envs: []Envelope{cmd("c1", x)}, facts: map[string]Facts{"c1": pass},
			want: decideRun{outs: []string{"ev-c1 201"}, asked: []string{"c1"}, cands: []string{"c1"}}},
		{name: "device not found beats permission and MNO",
			envs: []Envelope{cmd("c1", x)}, facts: map[string]Facts{"c1": {}},
			want: decideRun{outs: []string{"ev-c1 404 not_found device_id"}, asked: []string{"c1"}}},
		{name: "permission beats MNO",
			envs: []Envelope{cmd("c1", x)}, facts: map[string]Facts{"c1": {CompanyID: &company}},
			want: decideRun{outs: []string{"ev-c1 401 unauthorized"}, asked: []string{"c1"}}},
		{name: "MNO beats an ICCID taken by another transaction",
			envs: []Envelope{cmd("c1", x)}, facts: map[string]Facts{"c1": badMNO}, taken: []string{x},
			want: decideRun{outs: []string{"ev-c1 404 not_found mno_integration_id"}, asked: []string{"c1"}}},
		{name: "MNO beats an ICCID taken earlier in the batch",
			envs: []Envelope{cmd("c1", x), cmd("c2", x)}, facts: map[string]Facts{"c1": pass, "c2": badMNO},
			want: decideRun{outs: []string{"ev-c1 201", "ev-c2 404 not_found mno_integration_id"},
				asked: []string{"c1", "c2"}, cands: []string{"c1"}}},
		{name: "ICCID taken by another transaction",
			envs: []Envelope{cmd("c1", x), cmd("c2", y)}, facts: map[string]Facts{"c1": pass, "c2": pass}, taken: []string{x},
			want: decideRun{outs: []string{"ev-c1 400 already_exists iccid", "ev-c2 201"},
				asked: []string{"c1", "c2"}, cands: []string{"c1", "c2"}}},
		{name: "a command failing its checks does not claim the ICCID",
			envs:  []Envelope{cmd("c1", x), cmd("c2", x), cmd("c3", x)},
			facts: map[string]Facts{"c1": noGrant, "c2": pass, "c3": pass},
			want: decideRun{outs: []string{"ev-c1 401 unauthorized", "ev-c2 201", "ev-c3 400 already_exists iccid"},
				asked: []string{"c1", "c2", "c3"}, cands: []string{"c2"}}},
		{name: "three commands on one ICCID: the first wins",
			envs:  []Envelope{cmd("c1", x), cmd("c2", x), cmd("c3", x)},
			facts: map[string]Facts{"c1": pass, "c2": pass, "c3": pass},
			want: decideRun{outs: []string{"ev-c1 201", "ev-c2 400 already_exists iccid", "ev-c3 400 already_exists iccid"},
				asked: []string{"c1", "c2", "c3"}, cands: []string{"c1"}}},
		{name: "three commands on an ICCID another transaction holds",
			envs:  []Envelope{cmd("c1", x), cmd("c2", x), cmd("c3", x)},
			facts: map[string]Facts{"c1": pass, "c2": pass, "c3": pass}, taken: []string{x},
			want: decideRun{outs: []string{"ev-c1 400 already_exists iccid", "ev-c2 400 already_exists iccid", "ev-c3 400 already_exists iccid"},
				asked: []string{"c1", "c2", "c3"}, cands: []string{"c1"}}},
		{name: "repeated command id gets the first occurrence's outcome",
			envs:  []Envelope{cmd("c1", x), cmd("c2", y), cmd("c1", y)},
			facts: map[string]Facts{"c1": pass, "c2": pass},
			want: decideRun{outs: []string{"ev-c1 201", "ev-c2 201", "ev-c1 201 replayed"},
				asked: []string{"c1", "c2"}, cands: []string{"c1", "c2"}}},
		{name: "repeated command id of a rejected envelope",
			envs: []Envelope{InternalEnvelope("c1"), cmd("c1", x)},
			want: decideRun{outs: []string{"ev-c1 500 internal", "ev-c1 500 internal replayed"}}},
		{name: "stored outcome is returned, repeats too, its facts ignored",
			envs: []Envelope{cmd("c1", x), cmd("c2", x), cmd("c1", x)}, prev: []Outcome{stored("c1"), stored("other"), stored("more")},
			facts: map[string]Facts{"c1": noGrant, "c2": pass},
			want: decideRun{outs: []string{"stored-c1 404 not_found mno_integration_id replayed", "ev-c2 201",
				"stored-c1 404 not_found mno_integration_id replayed"}, asked: []string{"c1", "c2"}, cands: []string{"c2"}}},
		{name: "stored outcome wins over Reject",
			envs: []Envelope{InternalEnvelope("c1")}, prev: []Outcome{stored("c1")},
			want: decideRun{outs: []string{"stored-c1 404 not_found mno_integration_id replayed"}}},
		{name: "envelopes with Reject set are rejected without database checks",
			envs: []Envelope{
				ParseCommand([]byte(`{"command_id":"c1","actor_id":"u-1","sim":{"device_id":"d-1","iccid":"1"}}`)),
				ParseCommand([]byte(`{"command_id":"c2","sim":{"device_id":"d-1","iccid":"` + x + `"}}`)),
				InternalEnvelope("c3"), cmd("c4", x)},
			facts: map[string]Facts{"c4": pass},
			want: decideRun{outs: []string{"ev-c1 400 invalid_argument iccid", "ev-c2 401 unauthorized", "ev-c3 500 internal", "ev-c4 201"},
				asked: []string{"c4"}, cands: []string{"c4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runBatch(t, tt.envs, tt.prev, tt.facts, tt.taken...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestBatchWithoutCommandID(t *testing.T) {
	t.Parallel()
	envs := []Envelope{cmd("c1", "8944500102198304826"), ParseCommand([]byte(`{}`))}
	if _, err := NewBatch(envs); err == nil {
		t.Fatal("NewBatch accepted an envelope without a command id")
	}
}
