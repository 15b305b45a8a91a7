package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/cmd/internal/cli"
	"simworker/domain"
)

// errIncomplete makes simctl exit 1 after a run that left rows without an
// outcome (invalid lines, publish failures, missing outcomes).
var errIncomplete = errors.New("not every line got an outcome")

// errUnpublished makes simctl exit 1 after a run without --wait that left
// lines unpublished.
var errUnpublished = errors.New("not every line was published")

// waitConfig are the settings shared by publish and replay.
type waitConfig struct {
	Report      string        `env:"SIMCTL_REPORT" envDefault:"-" flag:"report" help:"with --wait: where the report goes ('-' is standard output)"`
	Format      string        `env:"SIMCTL_FORMAT" envDefault:"csv" flag:"format" help:"report format: csv or ndjson"`
	WaitTimeout time.Duration `env:"SIMCTL_WAIT_TIMEOUT" envDefault:"60s" flag:"wait-timeout" help:"with --wait: give up when no outcome arrived for this long"`
	MaxInflight int           `env:"SIMCTL_MAX_INFLIGHT" envDefault:"1000" flag:"max-inflight" help:"most publishes awaiting JetStream's acknowledgement"`
	Wait        bool          `flag:"wait" help:"wait for every outcome and write a report"`
}

// Validate checks the report format and the bounds.
func (w *waitConfig) Validate(c *cli.Check) {
	c.OneOf(&w.Format, "csv", "ndjson")
	c.NotNegative(&w.WaitTimeout)
	c.Positive(&w.MaxInflight)
}

// connect is a NATS connection for a simctl command.
func connect(n cli.NATS, stderr io.Writer) (*nats.Conn, jetstream.JetStream, error) {
	log, _ := cli.Logger("warn", stderr)
	nc, err := n.ConnectNow("simctl", log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// run publishes what feed produces, then (with --wait) waits for the outcomes
// and writes the report and summary.
func (w *waitConfig) run(ctx context.Context, js jetstream.JetStream, stdout, stderr io.Writer, refName, what string,
	total int64, feed func(t *tracker, pub *publisher) error) error {
	if _, err := client.Setup(ctx, js, client.StreamConfig{}); err != nil {
		return err
	}
	t := newTracker()
	started := time.Now()
	prog := newProgress(stderr, total, what)
	pub := newPublisher(js, t, w.MaxInflight, prog)
	ferr := feed(t, pub)
	pub.wait()
	prog.finish()
	if ferr != nil {
		return ferr
	}
	if n := t.count("would_replay"); n > 0 && n == t.rowCount() {
		// A dry run: the list of what would go out is the whole answer,
		// with or without --wait.
		if err := t.writeReport(stdout, w.Format, refName); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "dry run: %d commands would be replayed; nothing was published\n", n)
		return nil
	}
	if !w.Wait {
		fmt.Fprintln(stderr, t.published())
		if _, incomplete := t.summary(); incomplete != "" {
			return fmt.Errorf("%w: %s", errUnpublished, incomplete)
		}
		return nil
	}
	// Watching starts once every row is known; it reads SIM_EVENTS from a
	// duplicate window before the first publish, so nothing is missed.
	stop, err := client.WatchOutcomes(ctx, js, started, t.observe)
	if err != nil {
		return err
	}
	defer stop()
	if n := t.pending(); n > 0 {
		fmt.Fprintf(stderr, "waiting for %d outcomes...\n", n)
	}
	t.wait(ctx, w.WaitTimeout)
	t.finish()
	out := stdout
	if w.Report != "-" {
		f, err := os.Create(w.Report)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	if err := t.writeReport(out, w.Format, refName); err != nil {
		return err
	}
	sum, incomplete := t.summary()
	fmt.Fprintln(stderr, sum)
	if incomplete != "" {
		return fmt.Errorf("%w: %s", errIncomplete, incomplete)
	}
	return nil
}

// publishConfig is the configuration of simctl publish.
type publishConfig struct {
	NATS cli.NATS
	Wait waitConfig
}

func publishCmd(ctx context.Context, cfg *publishConfig, rest []string, stdout, stderr io.Writer) error {
	if len(rest) != 1 {
		return usageError("publish takes exactly one FILE ('-' for standard input)")
	}
	in, total, err := openInput(rest[0])
	if err != nil {
		return err
	}
	defer in.Close()
	nc, js, err := connect(cfg.NATS, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	return cfg.Wait.run(ctx, js, stdout, stderr, "line", "published", total, func(t *tracker, pub *publisher) error {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 1<<20), 8<<20)
		line := int64(0)
		for sc.Scan() {
			line++
			if ctx.Err() != nil {
				return ctx.Err()
			}
			body := sc.Bytes()
			if len(trimSpace(body)) == 0 {
				continue
			}
			env := domain.ParseCommand(body)
			r := &row{Ref: line, CommandID: env.CommandID}
			if env.CommandID == "" {
				r.Outcome, r.Reason = outInvalidLine, env.Reject.Message
				t.add(r, "")
				continue
			}
			t.add(r, "")
			pub.publish(ctx, r, client.CommandMsg(append([]byte(nil), body...), env.CommandID))
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read line %d: %w", line+1, err)
		}
		return nil
	})
}

// openInput opens FILE or standard input and counts its lines when it can.
func openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	lines := int64(0)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 8<<20)
	for sc.Scan() {
		if len(trimSpace(sc.Bytes())) > 0 {
			lines++
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, lines, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
