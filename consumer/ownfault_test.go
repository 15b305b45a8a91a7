package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/internal/testfactory"
)

// bigMetadata is a valid sim_metadata of a few hundred bytes sent that
// PostgreSQL stores as about 100 bytes per number.
func bigMetadata(numbers int) json.RawMessage {
	return json.RawMessage(`{"n":[` + strings.TrimSuffix(strings.Repeat("1e99,", numbers), ",") + `]}`)
}

// TestUnpublishableOutcomeIsPoison: a command whose outcome event the NATS
// server refuses for its size (larger than max_payload, or than the
// events stream's max_msg_size) is no outage: it gets its 500 internal and
// one dead letter, its SIM is undone, the 100 commands behind it are
// created, and the worker never backs off (its /readyz "deciding" check
// stays ok). Replayed, it gets the same 500.
func TestUnpublishableOutcomeIsPoison(t *testing.T) {
	t.Parallel()
	lowerEventsLimit := func(t *testing.T, b *bundle) {
		ctx := context.Background()
		s, err := b.js.Stream(ctx, client.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxMsgSize = 8192
		if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name          string
		opts          devstack.NATSOptions
		before, after func(t *testing.T, b *bundle) // limits set before the worker starts, or once it runs
		cause         string
		pad           int // bytes of padding in the command: near max_payload, its dead letter goes without it
	}{
		{"larger than max_payload", devstack.NATSOptions{MaxPayload: 8192}, nil, nil, "maximum payload exceeded", 0},
		{"larger than the events stream's max_msg_size", devstack.NATSOptions{}, lowerEventsLimit, nil, "max_msg_size", 0},
		{"the events stream's max_msg_size lowered while the worker runs", devstack.NATSOptions{}, nil, lowerEventsLimit,
			"message size exceeds maximum allowed", 0},
		{"a command near max_payload: its dead letter without its body", devstack.NATSOptions{MaxPayload: 8192}, nil, nil,
			"maximum payload exceeded", 7900},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, tt.opts)
			if tt.before != nil {
				tt.before(t, b)
			}
			obs := &outages{}
			w, _ := consumertest.Worker(t, b.ns.URL, b.dbURL, consumer.Config{Observer: obs})
			b.command("c-first", iccid(999))
			b.eventFor("c-first")
			if tt.after != nil {
				tt.after(t, b)
			}
			poisonICCID := iccid(900)
			md := bigMetadata(100)
			if tt.pad > 0 {
				md = json.RawMessage(`{"n":[1e99,1e99],"pad":"` + strings.Repeat("p", tt.pad) + `"}`)
			}
			poison := testfactory.Command{ID: "c-big", Sim: testfactory.Sim{ICCID: poisonICCID, Metadata: md}}
			if len(poison.Body()) > 1000+tt.pad {
				t.Fatalf("the command is %d bytes: the point is a small one", len(poison.Body()))
			}
			b.publish(string(poison.Body()), "c-big")
			for i := range 100 {
				b.command(fmt.Sprintf("c-ok-%d", i), iccid(1000+i))
			}

			// The worker never backs off while it deals with the poison.
			stop := make(chan struct{})
			backedOff := make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						close(backedOff)
						return
					default:
					}
					if _, err := w.BackingOff(); err != nil {
						backedOff <- err
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
			for i := range 100 {
				if e := b.eventFor(fmt.Sprintf("c-ok-%d", i)); e.Type != domain.TypeCreated {
					t.Fatalf("c-ok-%d: %s", i, e.raw)
				}
			}
			b.drained()
			close(stop)
			if err := <-backedOff; err != nil {
				t.Fatalf("the worker backed off (readyz not ready): %v", err)
			}
			if n := obs.unavailable.Load(); n != 0 {
				t.Fatalf("%d outages counted", n)
			}
			// The stream holds one event of the poison: its 500.
			var e event
			var n int
			for _, ev := range b.streamEvents() {
				if ev.CommandID == "c-big" {
					e, n = ev, n+1
				}
			}
			if n != 1 {
				t.Fatalf("%d events of c-big in %s, want 1", n, client.EventsStream)
			}
			conforms(t, domain.TypeRejected, e.raw)
			if r := e.rejection(t); r.Status != 500 || r.Code != domain.CodeInternal {
				t.Fatalf("the poison's outcome: %s", e.raw)
			}
			if n := b.count(`SELECT count(*) FROM sims WHERE iccid = $1`, poisonICCID); n != 0 {
				t.Fatalf("the poison's SIM is still stored (%d rows): it was never announced", n)
			}
			if n := b.count(`SELECT count(*) FROM sims`); n != 101 {
				t.Fatalf("%d SIMs stored, want the 101 valid ones", n)
			}
			if n := b.count(`SELECT count(*) FROM processed_commands WHERE command_id = 'c-big' AND status = 500 AND sim_id IS NULL`); n != 1 {
				t.Fatal("the stored outcome is not the 500")
			}
			letters := consumertest.StreamMessages(t, b.js, client.DeadLetterStream)
			if len(letters) != 1 || letters[0].Header.Get(client.HeaderCommandID) != "c-big" ||
				!strings.Contains(letters[0].Header.Get(client.HeaderError), tt.cause) {
				for _, m := range letters {
					t.Log(m.Header)
				}
				t.Fatalf("dead letters: %d, want 1 for c-big naming %q", len(letters), tt.cause)
			}
			if omitted := letters[0].Header.Get(client.HeaderBodyOmitted); (tt.pad > 0) != (omitted != "") ||
				tt.pad > 0 && len(letters[0].Data) != 0 || tt.pad == 0 && string(letters[0].Data) != string(poison.Body()) {
				t.Fatalf("dead letter: body %d bytes, %s %q", len(letters[0].Data), client.HeaderBodyOmitted, omitted)
			}

			// The same command again: the same 500, no second dead letter.
			seen := len(b.seen())
			b.publish(string(poison.Body()), "c-big-again")
			all := b.waitEvents(seen + 1)
			if last := all[len(all)-1]; last.ID != e.ID {
				t.Fatalf("the command again: %s, want event %s", last.raw, e.ID)
			}
			b.drained()
			if n := len(consumertest.StreamMessages(t, b.js, client.DeadLetterStream)); n != 1 || obs.deadLetters.Load() != 1 {
				t.Fatalf("%d dead letters (%d counted) after the replay, want 1", n, obs.deadLetters.Load())
			}
		})
	}
}

// TestPublishErrorSides: every error a publish can meet, and which side of
// the line it is on: an outage (retried with backoff, never an outcome) or
// the message's own fault (its command's 500 internal, at once).
func TestPublishErrorSides(t *testing.T) {
	t.Parallel()
	api := func(code jetstream.ErrorCode, desc string) error {
		return &jetstream.APIError{Code: 400, ErrorCode: code, Description: desc}
	}
	for _, tt := range []struct {
		name string
		err  error
		own  bool
	}{
		{"larger than the server's max_payload", nats.ErrMaxPayload, true},
		{"larger than the stream's max_msg_size", api(10054, "message size exceeds maximum allowed"), true},
		{"headers larger than the stream allows", api(10097, "header size exceeds maximum allowed"), true},
		{"larger than the file store takes", api(10077, "message too large"), true},
		{"wrapped", fmt.Errorf("publish: %w", nats.ErrMaxPayload), true},
		{"the stream at its byte limit (discard new)", api(10077, "maximum bytes exceeded"), false},
		{"the stream at its message limit", api(10077, "maximum messages exceeded"), false},
		{"JetStream's storage full", api(10047, "insufficient resources"), false},
		{"no JetStream (a restart)", jetstream.ErrJetStreamNotEnabled, false},
		{"no stream answers", jetstream.ErrNoStreamResponse, false},
		{"no acknowledgement in time", nats.ErrTimeout, false},
		{"the connection closed", nats.ErrConnectionClosed, false},
		{"reconnecting, buffer full", nats.ErrReconnectBufExceeded, false},
		{"the stream was deleted", jetstream.ErrStreamNotFound, false},
		{"the wrong stream answered (a configuration mismatch)", api(10060, "expected stream does not match"), false},
		{"a deadline", context.DeadlineExceeded, false},
		{"anything else", errors.New("boom"), false},
	} {
		if got := consumer.OwnFault(tt.err); got != tt.own {
			t.Errorf("%s: own fault %v, want %v", tt.name, got, tt.own)
		}
	}
}

// TestMetadataBoundsOverNATS: sim_metadata at and past each of its bounds,
// as commands through JetStream to a real worker: at the bound created
// (its stored metadata exactly that long), past it 400 with field
// sim_metadata; the 195-byte command that once jammed the worker among
// them.
func TestMetadataBoundsOverNATS(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(consumer.Config{})
	jam := json.RawMessage(`{"n0":1e131071,"n1":1e131071,"n2":1e131071,"n3":1e131071,"n4":1e131071,"n5":1e131071,"n6":1e131071,"n7":1e131071,"n8":1e131071}`)
	for i, tt := range []struct {
		name    string
		md      json.RawMessage
		created bool
	}{
		{"65,536 bytes stored", testfactory.StoredMetadata(domain.MaxMetadataStoredBytes), true},
		{"65,537 bytes stored", testfactory.StoredMetadata(domain.MaxMetadataStoredBytes + 1), false},
		{"a number of 100 digits written out", json.RawMessage(`{"a":1e99,"b":-1e-99}`), true},
		{"a number of 101 digits written out", json.RawMessage(`{"a":1e100}`), false},
		{"a number of 101 digits after the point", json.RawMessage(`{"a":1e-100}`), false},
		{"the 195-byte request", jam, false},
	} {
		id := fmt.Sprintf("c-md-%d", i)
		b.publish(string(testfactory.Command{ID: id, Sim: testfactory.Sim{ICCID: iccid(2000 + i), Metadata: tt.md}}.Body()), id)
		e := b.eventFor(id)
		if !tt.created {
			r := e.rejection(t)
			if r.Status != 400 || len(r.Errors) != 1 || r.Errors[0].Field != "sim_metadata" {
				t.Fatalf("%s: %s", tt.name, e.raw)
			}
			continue
		}
		if e.Type != domain.TypeCreated {
			t.Fatalf("%s: %s", tt.name, e.raw)
		}
		if n := b.count(`SELECT octet_length(sim_metadata::text) FROM sims WHERE iccid = $1`, iccid(2000+i)); i == 0 && n != domain.MaxMetadataStoredBytes {
			t.Fatalf("%s: %d bytes stored", tt.name, n)
		}
	}
}
