package consumer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/internal/testfactory"
)

// TestFullEventsStreamKeepsOutcomesFlowing: SIM_EVENTS at its byte limit
// drops its oldest events; the worker goes on deciding and publishing, and
// every outcome is stored.
func TestFullEventsStreamKeepsOutcomesFlowing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s, err := b.js.Stream(ctx, client.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = 32 << 10 // about 40 events
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	b.startWorker(consumer.Config{})
	const n = 300
	for i := range n {
		b.command(fmt.Sprintf("c-%d", i), testfactory.ICCID())
	}
	b.drained()
	if got := b.count(`SELECT count(*) FROM processed_commands`); got != n {
		t.Fatalf("%d outcomes stored, want %d", got, n)
	}
	s, err = b.js.Stream(ctx, client.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	st := s.CachedInfo().State
	if st.Bytes > 32<<10 || st.Msgs >= n || st.LastSeq < n {
		t.Fatalf("SIM_EVENTS holds %d events, %d bytes, last sequence %d: want the newest within 32 KiB of %d published", st.Msgs, st.Bytes, st.LastSeq, n)
	}
}

// TestFullCommandsStreamRefusesNewCommands: SIM_COMMANDS at its byte limit
// (DiscardNew) refuses a publish with an error the publisher sees, and
// every command it took is decided: none is dropped to make room.
func TestFullCommandsStreamRefusesNewCommands(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s, err := b.js.Stream(ctx, client.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = 16 << 10
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	taken := 0
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		c := testfactory.Command{ID: fmt.Sprintf("c-%d", i), Sim: testfactory.Sim{ICCID: testfactory.ICCID()}}
		if _, refused = b.js.Publish(ctx, client.CreateSubject, c.Body(), jetstream.WithMsgID(c.ID)); refused == nil {
			taken++
		}
	}
	if refused == nil || taken == 0 {
		t.Fatalf("took %d commands of 1000 into 16 KiB, refused: %v", taken, refused)
	}
	b.startWorker(consumer.Config{})
	b.drained()
	if got := b.count(`SELECT count(*) FROM processed_commands`); got != taken {
		t.Fatalf("%d outcomes stored, want one for each of the %d commands taken", got, taken)
	}
}
