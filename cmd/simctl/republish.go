package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"simworker/cmd/internal/cli"
	"simworker/consumer"
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
		from time.Time
		ids  []string
	)
	if cfg.Since != "" {
		var err error
		if from, err = parseSince(cfg.Since); err != nil {
			return err
		}
	} else {
		var err error
		if ids, err = readCommandIDs(cfg.Commands); err != nil {
			return err
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
	if _, err := consumer.Setup(ctx, js, consumer.StreamConfig{}); err != nil {
		return err
	}
	t := newTracker()
	prog := newProgress(stderr, -1, "republished")
	pub := newPublisher(js, t, 1000, prog)
	found := map[string]bool{}
	count := int64(0)
	err = repo.StoredOutcomes(ctx, pool, from, ids, func(o domain.Outcome) error {
		found[o.CommandID] = true
		count++
		r := &row{Ref: count, CommandID: o.CommandID, EventID: o.EventID, Outcome: outCreated, SimID: o.SimID, Status: o.Status,
			Code: string(o.Code), Reason: "republished"}
		if o.Type == domain.TypeRejected {
			r.Outcome = outRejected
		}
		t.add(r, "")
		pub.publishOutcome(ctx, r, o)
		return ctx.Err()
	})
	pub.wait()
	prog.finish()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !found[id] {
			count++
			t.add(&row{Ref: count, CommandID: id, Outcome: "not_found", Reason: "no stored outcome for this command id"}, "")
		}
	}
	if err := t.writeReport(stdout, "csv", "n"); err != nil {
		return err
	}
	sum, _ := t.summary()
	fmt.Fprintln(stderr, sum)
	return nil
}

// readCommandIDs reads command ids, one per line: a bare id or a command envelope.
func readCommandIDs(name string) ([]string, error) {
	in, _, err := openInput(name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var ids []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 8<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "":
		case strings.HasPrefix(text, "{"):
			env := domain.ParseCommand([]byte(text))
			if env.CommandID == "" {
				return nil, fmt.Errorf("%s:%d: %s", name, line, env.Reject.Message)
			}
			ids = append(ids, env.CommandID)
		default:
			ids = append(ids, text)
		}
	}
	return ids, sc.Err()
}
