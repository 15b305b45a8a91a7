package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/cmd/internal/cli"
	"simworker/domain"
)

// tailCmd follows the outcome events, one readable line each (or the raw
// CloudEvent with --json).
// tailConfig is the configuration of simctl tail.
type tailConfig struct {
	NATS    cli.NATS
	JSON    bool   `flag:"json" help:"print each event's raw CloudEvent JSON"`
	Type    string `flag:"type" help:"only this type: created or rejected (sim.created / sim.rejected)"`
	Command string `flag:"command" help:"only the events of this command id"`
	Since   string `flag:"since" help:"start this long ago (e.g. 10m) or at this RFC 3339 time; default: new events only"`
	All     bool   `flag:"all" help:"start at the first event in SIM_EVENTS"`
	Count   int    `flag:"count" help:"stop after this many events (0: follow until interrupted)"`
}

// Validate: --type is a type of outcome event.
func (cfg *tailConfig) Validate(c *cli.Check) {
	switch cfg.Type {
	case "", "created", "rejected", domain.TypeCreated, domain.TypeRejected:
	default:
		c.Fail(&cfg.Type, "%q is not created or rejected", cfg.Type)
	}
}

func tailCmd(ctx context.Context, cfg *tailConfig, _ []string, stdout, stderr io.Writer) error {
	typ := strings.TrimPrefix(cfg.Type, "sim.")
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{client.EventsSubject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case cfg.All:
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	case cfg.Since != "":
		t, err := parseSince(cfg.Since)
		if err != nil {
			return err
		}
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if typ != "" {
		occ.FilterSubjects = []string{"sim.events." + typ}
	}
	nc, js, err := connect(cfg.NATS, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	oc, err := js.OrderedConsumer(ctx, client.EventsStream, occ)
	if err != nil {
		return fmt.Errorf("follow %s: %w", client.EventsStream, err)
	}
	seen := 0
	for ctx.Err() == nil {
		msgs, err := oc.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for m := range msgs.Messages() {
			ev, err := client.ParseEvent(m.Data())
			if err != nil {
				continue
			}
			if cfg.Command != "" && ev.CommandID != cfg.Command {
				continue
			}
			if cfg.JSON {
				fmt.Fprintf(stdout, "%s\n", safeJSON(ev.Raw))
			} else {
				fmt.Fprintln(stdout, eventLine(ev))
			}
			seen++
			if cfg.Count > 0 && seen >= cfg.Count {
				return nil
			}
		}
	}
	return nil
}

// eventLine is an event in one readable line.
func eventLine(ev client.Event) string {
	id := safe(ev.CommandID)
	if id == "" {
		id = "(no command id)"
	}
	if ev.Type == domain.TypeCreated {
		var sim domain.Sim
		_ = json.Unmarshal(ev.Data, &sim)
		return fmt.Sprintf("%s created  %s sim=%s iccid=%s company=%s device=%s status=%s event=%s",
			safe(ev.Time), id, safe(sim.ID), safe(sim.ICCID), safe(sim.CompanyID), safe(sim.DeviceID), safe(sim.Status), safe(ev.ID))
	}
	r := ev.Rejection()
	return fmt.Sprintf("%s rejected %s %d %s: %s event=%s", safe(ev.Time), id, r.Status, safe(string(r.Code)), safe(r.Message), safe(ev.ID))
}
