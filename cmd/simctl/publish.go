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
	"simworker/consumer"
	"simworker/domain"
)

// errIncomplete makes simctl exit 1 after a run that left rows without an
// outcome (invalid lines, publish failures, missing outcomes).
var errIncomplete = errors.New("not every line got an outcome (see the report)")

// waitSettings are shared by publish and replay.
type waitSettings struct {
	wait              *bool
	report, format    *string
	idle, maxInflight *string
}

func declareWait(s *cli.Settings) *waitSettings {
	w := &waitSettings{
		report:      s.String("report", "SIMCTL_REPORT", "-", "with --wait: where the report goes ('-' is standard output)"),
		format:      s.String("format", "SIMCTL_FORMAT", "csv", "report format: csv or ndjson"),
		idle:        s.String("wait-timeout", "SIMCTL_WAIT_TIMEOUT", "60s", "with --wait: give up when no outcome arrived for this long"),
		maxInflight: s.String("max-inflight", "SIMCTL_MAX_INFLIGHT", "1000", "most publishes awaiting JetStream's acknowledgement"),
	}
	w.wait = s.FlagSet().Bool("wait", false, "wait for every outcome and write a report")
	return w
}

// session is a NATS connection for a simctl command.
func connect(n *cli.NATS, stderr io.Writer) (*nats.Conn, jetstream.JetStream, error) {
	log, _ := cli.Logger("warn", stderr)
	nc, err := n.Connect("simctl", log)
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
func (w *waitSettings) run(ctx context.Context, js jetstream.JetStream, stdout, stderr io.Writer, refName, what string,
	total int64, feed func(t *tracker, pub *publisher) error) error {
	idle, err := cli.Duration("SIMCTL_WAIT_TIMEOUT", *w.idle)
	if err != nil {
		return err
	}
	inflight, err := cli.Int("SIMCTL_MAX_INFLIGHT", *w.maxInflight)
	if err != nil {
		return err
	}
	if *w.format != "csv" && *w.format != "ndjson" {
		return fmt.Errorf("SIMCTL_FORMAT: %q is not csv or ndjson", *w.format)
	}
	if _, err := consumer.Setup(ctx, js, consumer.StreamConfig{}); err != nil {
		return err
	}
	t := newTracker()
	started := time.Now()
	prog := newProgress(stderr, total, what)
	pub := newPublisher(js, t, inflight, prog)
	ferr := feed(t, pub)
	pub.wait()
	prog.finish()
	if ferr != nil {
		return ferr
	}
	if !*w.wait {
		sum, _ := t.summary()
		fmt.Fprintf(stderr, "published; %s (run with --wait for outcomes)\n", sum)
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
	t.wait(ctx, idle)
	t.finish()
	out := stdout
	if *w.report != "-" {
		f, err := os.Create(*w.report)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	if err := t.writeReport(out, *w.format, refName); err != nil {
		return err
	}
	sum, complete := t.summary()
	fmt.Fprintln(stderr, sum)
	if !complete {
		return errIncomplete
	}
	return nil
}

func publishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := cli.New("simctl publish", "simctl publish [--wait] FILE.ndjson|-: publish one command envelope per line, Nats-Msg-Id = command_id.")
	n := cli.DeclareNATS(s, true)
	w := declareWait(s)
	if err := s.Parse(args); err != nil {
		return err
	}
	rest := s.FlagSet().Args()
	if len(rest) != 1 {
		return usageError("publish takes exactly one FILE ('-' for standard input)")
	}
	in, total, err := openInput(rest[0])
	if err != nil {
		return err
	}
	defer in.Close()
	nc, js, err := connect(n, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	return w.run(ctx, js, stdout, stderr, "line", "published", total, func(t *tracker, pub *publisher) error {
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
