package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer/consumertest"
	"simworker/internal/devstack"
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
	_, _, js := consumertest.NATS(t, client.StreamConfig{})
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
	if u := client.Unbounded(context.Background(), js); len(u) != 0 {
		t.Errorf("streams with limits reported unbounded: %v", u)
	}

	_, _, js = consumertest.NATS(t, client.StreamConfig{
		Commands: client.Limits{MaxAge: 30 * time.Second, MaxBytes: 1 << 20}.WithDiscard(jetstream.DiscardOld),
		Events:   client.Limits{MaxAge: -1, MaxBytes: -1},
	})
	c := streamConfig(t, js, client.CommandsStream)
	if c.MaxAge != 30*time.Second || c.MaxBytes != 1<<20 || c.Discard != jetstream.DiscardOld || c.Duplicates != 30*time.Second {
		t.Errorf("configured SIM_COMMANDS: max age %s, max bytes %d, discard %s, duplicates %s", c.MaxAge, c.MaxBytes, c.Discard, c.Duplicates)
	}
	if c := streamConfig(t, js, client.EventsStream); c.MaxAge != 0 || c.MaxBytes != -1 {
		t.Errorf("SIM_EVENTS without limits: max age %s, max bytes %d", c.MaxAge, c.MaxBytes)
	}
	if u := client.Unbounded(context.Background(), js); len(u) != 1 || u[0] != client.EventsStream {
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
	_, err = client.Setup(context.Background(), js, client.StreamConfig{})
	if !errors.Is(err, client.ErrNoStorage) {
		t.Fatalf("Setup with 1 GiB of events on 64 MiB of storage: %v, want ErrNoStorage", err)
	}
	for _, w := range []string{client.EventsStream, "max_file_store"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if _, err := client.Setup(context.Background(), js, client.StreamConfig{
		Events: client.Limits{MaxBytes: 16 << 20}, DeadLetter: client.Limits{MaxBytes: 8 << 20},
	}); err != nil {
		t.Fatalf("limits that fit: %v", err)
	}
}
