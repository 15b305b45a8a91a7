package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/consumer/consumertest"
	"simworker/internal/devstack"
	"simworker/internal/testfactory"
)

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config
}

// TestStreamsAreCreatedWithLimits: by default every stream has a max age,
// the events and dead letters a byte limit too, and each the discard policy
// documented; configured limits replace them, a negative one is none, and
// the duplicate window never outlasts the max age.
func TestStreamsAreCreatedWithLimits(t *testing.T) {
	t.Parallel()
	_, _, js := consumertest.NATS(t, consumer.StreamConfig{})
	for _, want := range []struct {
		name     string
		age      time.Duration
		bytes    int64
		discard  jetstream.DiscardPolicy
		duplicat time.Duration
	}{
		{client.CommandsStream, 7 * 24 * time.Hour, -1, jetstream.DiscardNew, 2 * time.Minute},
		{client.EventsStream, 7 * 24 * time.Hour, 1 << 30, jetstream.DiscardOld, 2 * time.Minute},
		{client.DeadLetterStream, 30 * 24 * time.Hour, 256 << 20, jetstream.DiscardOld, 2 * time.Minute},
	} {
		c := streamConfig(t, js, want.name)
		if c.MaxAge != want.age || c.MaxBytes != want.bytes || c.Discard != want.discard || c.Duplicates != want.duplicat {
			t.Errorf("%s: max age %s, max bytes %d, discard %s, duplicates %s; want %s, %d, %s, %s",
				want.name, c.MaxAge, c.MaxBytes, c.Discard, c.Duplicates, want.age, want.bytes, want.discard, want.duplicat)
		}
	}
	if u := consumer.Unbounded(context.Background(), js); len(u) != 0 {
		t.Errorf("streams with limits reported unbounded: %v", u)
	}

	_, _, js = consumertest.NATS(t, consumer.StreamConfig{
		Commands: consumer.Limits{MaxAge: 30 * time.Second, MaxBytes: 1 << 20}.WithDiscard(jetstream.DiscardOld),
		Events:   consumer.Limits{MaxAge: -1, MaxBytes: -1},
	})
	c := streamConfig(t, js, client.CommandsStream)
	if c.MaxAge != 30*time.Second || c.MaxBytes != 1<<20 || c.Discard != jetstream.DiscardOld || c.Duplicates != 30*time.Second {
		t.Errorf("configured SIM_COMMANDS: max age %s, max bytes %d, discard %s, duplicates %s", c.MaxAge, c.MaxBytes, c.Discard, c.Duplicates)
	}
	if c := streamConfig(t, js, client.EventsStream); c.MaxAge != 0 || c.MaxBytes != -1 {
		t.Errorf("SIM_EVENTS without limits: max age %s, max bytes %d", c.MaxAge, c.MaxBytes)
	}
	if u := consumer.Unbounded(context.Background(), js); len(u) != 1 || u[0] != client.EventsStream {
		t.Errorf("unbounded streams: %v, want [%s]", u, client.EventsStream)
	}
}

// TestStreamLimitBeyondStorage: a byte limit JetStream cannot reserve is a
// setting to change, refused with an error that says so.
func TestStreamLimitBeyondStorage(t *testing.T) {
	t.Parallel()
	ns, err := devstack.StartNATS(devstack.NATSOptions{MaxStore: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	js, err := jetstream.New(consumertest.Connect(t, ns.URL))
	if err != nil {
		t.Fatal(err)
	}
	_, err = consumer.Setup(context.Background(), js, consumer.StreamConfig{})
	if !errors.Is(err, consumer.ErrNoStorage) {
		t.Fatalf("Setup with 1 GiB of events on 64 MiB of storage: %v, want ErrNoStorage", err)
	}
	for _, w := range []string{client.EventsStream, "max_file_store"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if _, err := consumer.Setup(context.Background(), js, consumer.StreamConfig{
		Events: consumer.Limits{MaxBytes: 16 << 20}, DeadLetter: consumer.Limits{MaxBytes: 8 << 20},
	}); err != nil {
		t.Fatalf("limits that fit: %v", err)
	}
}

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
