package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"simworker/client"
	"simworker/cmd/internal/cli"
	"simworker/domain"
	"simworker/repo"
)

// republishCmd re-emits stored outcomes with their original event ids, for a
// downstream that lost events or an events stream that lost data. PostgreSQL
// is the system of record; inside the duplicate window JetStream drops the
// events it still has.
// republishConfig is the configuration of simctl events republish.
type republishConfig struct {
	NATS     cli.NATS
	Database cli.Database
	Since    string `flag:"since" help:"outcomes stored since this long ago (e.g. 24h) or this RFC 3339 time"`
	Commands string `flag:"commands" help:"file of command ids, one per line (a command envelope per line works too; '-' is standard input)"`
}

func republishCmd(ctx context.Context, cfg *republishConfig, _ []string, stdout, stderr io.Writer) error {
	if (cfg.Since == "") == (cfg.Commands == "") {
		return usageError("events republish needs exactly one of --since and --commands")
	}
	var (
		from  time.Time
		ids   []string
		lines []idLine
	)
	if cfg.Since != "" {
		var err error
		if from, err = parseSince(cfg.Since); err != nil {
			return err
		}
	} else {
		var err error
		if lines, err = readCommandIDs(cfg.Commands); err != nil {
			return err
		}
		for _, l := range lines {
			if l.invalid == "" {
				ids = append(ids, l.id)
			}
		}
	}
	pool, err := repo.Open(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, js, err := connect(cfg.NATS, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := client.Setup(ctx, js, client.StreamConfig{}); err != nil {
		return err
	}
	t := newTracker()
	prog := newProgress(stderr, -1, "republished")
	pub := newPublisher(js, t, 1000, prog)
	found := map[string]*row{}
	count := int64(0)
	err = repo.New(pool).StoredOutcomes(ctx, from, ids, func(o domain.Outcome) error {
		count++
		r := &row{Ref: count, CommandID: o.CommandID, EventID: o.EventID, Outcome: outCreated, SimID: o.SimID, Status: o.Status,
			Code: string(o.Code)}
		if o.Type == domain.TypeRejected {
			r.Outcome = outRejected
			if ev, err := client.ParseEvent(o.Event); err == nil {
				r.Reason = ev.Rejection().Message
			}
		}
		found[o.CommandID] = r
		t.add(r, "")
		pub.publishOutcome(ctx, r, o)
		return ctx.Err()
	})
	pub.wait()
	prog.finish()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, l := range lines {
		switch r := found[l.id]; {
		case l.invalid != "":
			count++
			t.add(&row{Ref: count, Outcome: outInvalidLine, Reason: fmt.Sprintf("line %d: %s", l.line, l.invalid)}, "")
		case r == nil:
			count++
			t.add(&row{Ref: count, CommandID: l.id, Outcome: outNoOutcome, Reason: "no stored outcome for this command id"}, "")
		case seen[l.id]: // given again: the same outcome, counted as repeated (it was published once)
			count++
			again := *r
			again.Ref = count
			t.add(&again, "")
		}
		seen[l.id] = true
	}
	if err := t.writeReport(stdout, "csv", "n"); err != nil {
		return err
	}
	sum, incomplete := t.summary()
	fmt.Fprintln(stderr, sum)
	if incomplete != "" {
		return fmt.Errorf("%w: %s", errIncomplete, incomplete)
	}
	return nil
}

// idLine is a line of a --commands file: a command id, or why it is none.
type idLine struct {
	id, invalid string
	line        int
}

// readCommandIDs reads command ids, one per line: a bare id (no spaces) or
// a command envelope; any other line is reported as invalid, not taken
// for an id.
func readCommandIDs(name string) ([]idLine, error) {
	in, _, err := openInput(name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var ids []idLine
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 8<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "":
		case strings.HasPrefix(text, "{"):
			env := domain.ParseCommand([]byte(text))
			if env.CommandID == "" {
				ids = append(ids, idLine{line: line, invalid: env.Reject.Message})
				continue
			}
			ids = append(ids, idLine{id: env.CommandID, line: line})
		case strings.ContainsAny(text, " \t") || len(text) > 128:
			ids = append(ids, idLine{line: line, invalid: "neither a command id (at most 128 characters, no spaces) nor a command envelope"})
		default:
			ids = append(ids, idLine{id: text, line: line})
		}
	}
	return ids, sc.Err()
}
