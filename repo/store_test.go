package repo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"simworker/domain"
	"simworker/repo"
)

func TestHandleStoresInternal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, store := prepared(t)

	t.Run("new command gets a stored 500 internal", func(t *testing.T) {
		t.Parallel()
		outs, err := store.Handle(ctx, []domain.Envelope{domain.InternalEnvelope("poison")})
		if err != nil {
			t.Fatal(err)
		}
		o := outs[0]
		if o.Type != domain.TypeRejected || o.Status != 500 || o.Code != domain.CodeInternal || o.Replayed {
			t.Fatalf("%s %d %s replayed=%v, want a new 500 internal rejection", o.Type, o.Status, o.Code, o.Replayed)
		}
		var ev struct {
			Data domain.Rejection `json:"data"`
		}
		if err := json.Unmarshal(o.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Data.CommandID != "poison" || ev.Data.Message != "internal error: the command could not be processed" ||
			ev.Data.Errors == nil || len(ev.Data.Errors) != 0 {
			t.Fatalf("data %+v, want the internal error message and errors []", ev.Data)
		}
		again, err := store.Handle(ctx, []domain.Envelope{domain.InternalEnvelope("poison")})
		if err != nil {
			t.Fatal(err)
		}
		if again[0].EventID != o.EventID || string(again[0].Event) != string(o.Event) || !again[0].Replayed {
			t.Fatalf("second delivery: event %s replayed=%v, want the stored %s", again[0].EventID, again[0].Replayed, o.EventID)
		}
	})

	t.Run("stored outcome wins over internal", func(t *testing.T) {
		t.Parallel()
		// prepared stored decided-before's outcome (401, u-none has no grant).
		outs, err := store.Handle(ctx, []domain.Envelope{domain.InternalEnvelope("decided-before")})
		if err != nil {
			t.Fatal(err)
		}
		var before domain.Outcome
		if err := repo.New(pool).StoredOutcomes(ctx, time.Time{}, []string{"decided-before"}, func(o domain.Outcome) error {
			before = o
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		o := outs[0]
		if o.EventID != before.EventID || string(o.Event) != string(before.Event) || o.Code != domain.CodeUnauthorized || !o.Replayed {
			t.Fatalf("%s %s replayed=%v, want the stored unauthorized %s, replayed", o.EventID, o.Code, o.Replayed, before.EventID)
		}
	})
}

// TestStoredOutcomesPages: both ways of reading stored outcomes return each
// once, oldest first, across pages.
func TestStoredOutcomesPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, store := prepared(t) // stores "decided-before" and "earlier"
	start := time.Now().Add(-time.Minute)
	var envs []domain.Envelope
	var ids []string
	for i := range 1500 {
		id := fmt.Sprintf("p-%04d", i)
		envs, ids = append(envs, domain.InternalEnvelope(id)), append(ids, id)
	}
	outs, err := store.Handle(ctx, envs)
	if err != nil {
		t.Fatal(err)
	}
	read := func(since time.Time, ids []string) []domain.Outcome {
		t.Helper()
		var got []domain.Outcome
		if err := repo.New(pool).StoredOutcomes(ctx, since, ids, func(o domain.Outcome) error {
			got = append(got, o)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	same := func(name string, got []domain.Outcome, want []domain.Outcome) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d outcomes, want %d", name, len(got), len(want))
		}
		for k := range want {
			g, w := got[k], want[k]
			if g.CommandID != w.CommandID || g.EventID != w.EventID || g.Type != w.Type || g.Status != w.Status ||
				g.Code != w.Code || g.SimID != w.SimID || string(g.Event) != string(w.Event) || !g.Replayed {
				t.Fatalf("%s: outcome %d is %+v, want %+v replayed", name, k, g, w)
			}
		}
	}
	// One transaction stored them all at one time: command id orders them.
	same("by command id", read(time.Time{}, ids), outs)
	all := read(start, nil)
	if len(all) != len(outs)+2 {
		t.Fatalf("since: %d outcomes, want %d", len(all), len(outs)+2)
	}
	if first := all[0].CommandID + " " + all[1].CommandID; first != "earlier decided-before" {
		t.Fatalf("since: first %s, want those prepared stored first", first)
	}
	same("since", all[2:], outs)
	if got := read(time.Now().Add(time.Minute), nil); len(got) != 0 {
		t.Fatalf("since a later time: %d outcomes", len(got))
	}
}

// TestCreatedEventIsTheStoredRow: the SIM a created event announces is made
// by the worker, not read back: it must be the stored row, byte for byte in
// the event (metadata as jsonb prints it, times, defaults), for every field.
func TestCreatedEventIsTheStoredRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, store := prepared(t)
	env := domain.ParseCommand([]byte(`{"command_id":"c-row","actor_id":"u-root","sim":{"device_id":"d-a","iccid":"8949000000000000777",
		"msisdn":"4915112345678","status":"active","communication_plan":"IoT EU","rate_plan":"Flex 1GB",
		"sim_metadata":{"zz":1e3,"a":[1.50,-0.0,"\u00e9\n"],"a":{"k":"last","b":null},"mm":{"y":true,"x":0.001e2}}}}`))
	outs, err := store.Handle(ctx, []domain.Envelope{env})
	if err != nil || outs[0].Type != domain.TypeCreated {
		t.Fatalf("%v %+v", err, outs)
	}
	sim, err := store.VisibleSim(ctx, outs[0].SimID, "u-root")
	if err != nil || sim == nil {
		t.Fatalf("the stored row: %v %v", sim, err)
	}
	fromRow, err := domain.NewCreated(domain.DefaultSource, outs[0].EventID, "c-row", *sim)
	if err != nil {
		t.Fatal(err)
	}
	if string(fromRow.Event) != string(outs[0].Event) {
		t.Fatalf("the event announces\n%s\nthe stored row is\n%s", outs[0].Event, fromRow.Event)
	}
	var md string
	if err := pool.QueryRow(ctx, `SELECT sim_metadata::text FROM sims WHERE id = $1`, outs[0].SimID).Scan(&md); err != nil ||
		md != `{"a": {"b": null, "k": "last"}, "mm": {"x": 0.1, "y": true}, "zz": 1000}` {
		t.Fatalf("stored metadata %s (%v)", md, err)
	}
}
