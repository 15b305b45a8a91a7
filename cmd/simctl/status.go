package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/cmd/internal/cli"
	"simworker/repo"
)

// statusCmd shows the streams, the worker's consumer and, with DATABASE_URL,
// the outcomes stored by code.
// statusConfig is the configuration of simctl status. The database is
// optional here, so it is not a cli.Database.
type statusConfig struct {
	NATS        cli.NATS
	DatabaseURL string `env:"DATABASE_URL" flag:"database-url" secret:"url" help:"PostgreSQL URL: adds the outcomes stored by code"`
}

func statusCmd(ctx context.Context, cfg *statusConfig, _ []string, stdout, stderr io.Writer) error {
	nc, js, err := connect(cfg.NATS, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tMESSAGES\tBYTES\tFIRST SEQ\tLAST SEQ\tREPLICAS")
	for _, name := range []string{client.CommandsStream, client.EventsStream, client.DeadLetterStream} {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			fmt.Fprintf(w, "%s\t(none yet: the worker creates it)\t\t\t\t\n", name)
			continue
		}
		if err != nil {
			return fmt.Errorf("stream %s on NATS at %s: %w", name, cfg.NATS.Shown(), err)
		}
		i := st.CachedInfo()
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\n", name, i.State.Msgs, i.State.Bytes, i.State.FirstSeq, i.State.LastSeq, i.Config.Replicas)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tWAITING PULLS\tACK FLOOR")
	if c, err := js.Consumer(ctx, client.CommandsStream, client.DurableName); errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		fmt.Fprintf(w, "%s\t(none yet: the worker creates it)\t\t\t\t\n", client.DurableName)
	} else if err != nil {
		return fmt.Errorf("consumer %s on NATS at %s: %w", client.DurableName, cfg.NATS.Shown(), err)
	} else {
		i := c.CachedInfo()
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\n", client.DurableName, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, i.AckFloor.Stream)
	}
	if cfg.DatabaseURL != "" {
		pool, err := repo.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		counts, sims, err := repo.New(pool).OutcomeCounts(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "OUTCOME\tCODE\tSTATUS\tCOMMANDS")
		for _, c := range counts {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", c.Type, c.Code, c.Status, c.Commands)
		}
		fmt.Fprintf(w, "SIMs stored\t\t\t%d\n", sims)
	} else {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Outcomes by code come from PostgreSQL: set DATABASE_URL (or --database-url) to see them.")
	}
	return w.Flush()
}
