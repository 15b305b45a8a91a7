package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/cmd/internal/cli"
	"simworker/domain"
)

// replayConfig is the configuration of simctl replay.
type replayConfig struct {
	NATS    cli.NATS
	Wait    waitConfig
	FromSeq uint64 `flag:"from-seq" help:"first stream sequence of SIM_COMMANDS to replay"`
	ToSeq   uint64 `flag:"to-seq" help:"last stream sequence to replay (default: the last one when the replay starts)"`
	Since   string `flag:"since" help:"replay commands stored since this long ago (e.g. 90m) or this RFC 3339 time"`
	RunID   string `flag:"run-id" help:"id of this replay (default: a new one); repeating a replay with the same id inside the duplicate window publishes nothing twice"`
	DryRun  bool   `flag:"dry-run" help:"list what would be replayed, publish nothing"`
}

// replayCmd re-runs a range of SIM_COMMANDS through the worker.
//
// JetStream drops a publish whose Nats-Msg-Id it saw inside the duplicate
// window, so replay never re-publishes under the command id: each copy gets
// the id "replay:RUN:SEQ", RUN being new for every invocation (or --run-id, to
// make one replay safe to repeat), and headers naming the original message.
// The worker then finds each command's stored outcome and re-publishes it
// unchanged; a body without a command id gets the event of its original
// position. Nothing is created twice.
func replayCmd(ctx context.Context, cfg *replayConfig, _ []string, stdout, stderr io.Writer) error {
	if (cfg.FromSeq == 0) == (cfg.Since == "") {
		return usageError("replay needs exactly one of --from-seq and --since")
	}
	var startTime time.Time
	if cfg.Since != "" {
		var err error
		if startTime, err = parseSince(cfg.Since); err != nil {
			return err
		}
	}
	runID := cfg.RunID
	if runID == "" {
		runID = uuid.Must(uuid.NewV7()).String()
	}
	nc, js, err := connect(cfg.NATS, stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	stream, err := js.Stream(ctx, client.CommandsStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", client.CommandsStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq // copies appended by this replay come after it: never replayed again
	if cfg.ToSeq != 0 && cfg.ToSeq < last {
		last = cfg.ToSeq
	}
	if cfg.FromSeq != 0 && cfg.FromSeq > last {
		return fmt.Errorf("--from-seq %d is past the last sequence %d", cfg.FromSeq, last)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{client.CreateSubject}}
	if cfg.FromSeq != 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.FromSeq
	} else {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &startTime
	}
	oc, err := js.OrderedConsumer(ctx, client.CommandsStream, occ)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replay %s: SIM_COMMANDS up to sequence %d\n", runID, last)
	what := "replayed"
	if cfg.DryRun {
		what = "listed (dry run)"
	}
	return cfg.Wait.run(ctx, js, stdout, stderr, "seq", what, -1, func(t *tracker, pub *publisher) error {
		for {
			msgs, err := oc.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				return err
			}
			count := 0
			for m := range msgs.Messages() {
				count++
				meta, err := m.Metadata()
				if err != nil {
					return err
				}
				seq := meta.Sequence.Stream
				if seq > last {
					return nil
				}
				env := domain.ParseCommand(m.Data())
				r := &row{Ref: int64(seq), CommandID: env.CommandID}
				if cfg.DryRun {
					r.Outcome = "would_replay"
					t.add(r, "")
					pub.prog.add(1)
					if seq == last {
						return nil
					}
					continue
				}
				t.add(r, client.PositionEventID(meta.Stream, seq))
				msg := client.CommandMsg(m.Data(), "replay:"+runID+":"+strconv.FormatUint(seq, 10))
				msg.Header.Set(client.HeaderOrigStream, meta.Stream)
				msg.Header.Set(client.HeaderOrigSeq, strconv.FormatUint(seq, 10))
				msg.Header.Set(client.HeaderOrigTime, meta.Timestamp.UTC().Format(time.RFC3339Nano))
				pub.publish(ctx, r, msg)
				if seq == last {
					return nil
				}
			}
			if err := msgs.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
				return err
			}
			if count == 0 {
				return nil // nothing more on the subject up to the end of the stream
			}
		}
	})
}

// parseSince reads --since: a duration back from now (90m) or an RFC 3339 time.
func parseSince(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, usageError(fmt.Sprintf("--since %q is neither a duration (90m) nor an RFC 3339 time", v))
}
