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
func tailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := cli.New("simctl tail", "simctl tail [--json] [--type created|rejected] [--command ID] [--since D|TIME]: follow sim.created / sim.rejected events.")
	n := cli.DeclareNATS(s, true)
	asJSON := s.FlagSet().Bool("json", false, "print each event's raw CloudEvent JSON")
	typ := s.FlagSet().String("type", "", "only this type: created or rejected (sim.created / sim.rejected)")
	command := s.FlagSet().String("command", "", "only the events of this command id")
	since := s.FlagSet().String("since", "", "start this long ago (e.g. 10m) or at this RFC 3339 time; default: new events only")
	all := s.FlagSet().Bool("all", false, "start at the first event in SIM_EVENTS")
	count := s.FlagSet().Int("count", 0, "stop after this many events (0: follow until interrupted)")
	if err := s.Parse(args); err != nil {
		return err
	}
	switch *typ {
	case "", domain.TypeCreated, domain.TypeRejected:
	case "created", "rejected":
		*typ = "sim." + *typ
	default:
		return usageError(fmt.Sprintf("--type %q: use created or rejected", *typ))
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{client.EventsSubject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case *all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case *since != "":
		t, err := parseSince(*since)
		if err != nil {
			return err
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if *typ != "" {
		cfg.FilterSubjects = []string{"sim.events." + strings.TrimPrefix(*typ, "sim.")}
	}
	nc, js, err := connect(n, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	oc, err := js.OrderedConsumer(ctx, client.EventsStream, cfg)
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
			if *command != "" && ev.CommandID != *command {
				continue
			}
			if *asJSON {
				fmt.Fprintf(stdout, "%s\n", ev.Raw)
			} else {
				fmt.Fprintln(stdout, eventLine(ev))
			}
			seen++
			if *count > 0 && seen >= *count {
				return nil
			}
		}
	}
	return nil
}

// eventLine is an event in one readable line.
func eventLine(ev client.Event) string {
	id := ev.CommandID
	if id == "" {
		id = "(no command id)"
	}
	if ev.Type == domain.TypeCreated {
		var sim domain.Sim
		_ = json.Unmarshal(ev.Data, &sim)
		return fmt.Sprintf("%s created  %s sim=%s iccid=%s company=%s device=%s status=%s event=%s",
			ev.Time, id, sim.ID, sim.ICCID, sim.CompanyID, sim.DeviceID, sim.Status, ev.ID)
	}
	r := ev.Rejection()
	return fmt.Sprintf("%s rejected %s %d %s: %s event=%s", ev.Time, id, r.Status, r.Code, r.Message, ev.ID)
}
