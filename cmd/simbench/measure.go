package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/repo"
)

// throughput publishes the commands while the worker runs and measures from
// the first publish to the last outcome. preload SIMs are stored first.
func (b *bench) throughput(ctx context.Context, cmds []command, preload int, cpuProfile string) (float64, int64, cpuUse, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, 0, cpuUse{}, err
	}
	defer pool.Close()
	if preload > 0 {
		b.logf("storing %d SIMs first", preload)
		if err := repo.Preload(ctx, pool, preload); err != nil {
			return 0, 0, cpuUse{}, err
		}
	}
	if err := b.freshStreams(ctx); err != nil {
		return 0, 0, cpuUse{}, err
	}
	b.checkpoint(ctx)
	stop, pid, err := b.worker(dbURL, cpuProfile)
	if err != nil {
		return 0, 0, cpuUse{}, err
	}
	if err := b.waitReady(ctx); err != nil {
		_, _ = stop()
		return 0, 0, cpuUse{}, err
	}
	b.logf("throughput: %d commands", len(cmds))
	meter := cpuMeter{workerPID: pid, pgPID: b.pgPID}
	before := meter.snapshot()
	start := time.Now()
	for _, c := range cmds {
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			_, _ = stop()
			return 0, 0, cpuUse{}, err
		}
	}
	err = b.waitEvents(ctx, len(cmds), 30*time.Minute)
	elapsed := time.Since(start)
	used := meter.snapshot().sub(before)
	rss, stopErr := stop()
	if err != nil {
		return 0, 0, cpuUse{}, err
	}
	if stopErr != nil {
		return 0, 0, cpuUse{}, fmt.Errorf("worker exit: %w", stopErr)
	}
	return float64(len(cmds)) / elapsed.Seconds(), rss, used, nil
}

type latencies struct {
	n             int
	p50, p99, max time.Duration
	achieved      float64
}

// latency offers commands at a fixed rate and measures publish to outcome.
func (b *bench) latency(ctx context.Context, perSecond int, d time.Duration) (latencies, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return latencies{}, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return latencies{}, err
	}
	b.checkpoint(ctx)
	stop, _, err := b.worker(dbURL, "")
	if err != nil {
		return latencies{}, err
	}
	defer stop()
	if err := b.waitReady(ctx); err != nil {
		return latencies{}, err
	}
	n := int(float64(perSecond) * d.Seconds())
	cmds := generate(n, 0)
	for i := range cmds {
		cmds[i].id = fmt.Sprintf("lat%d-%s", perSecond, cmds[i].id)
		cmds[i].body = []byte(strings.Replace(string(cmds[i].body), `"command_id":"b-`, fmt.Sprintf(`"command_id":"lat%d-b-`, perSecond), 1))
	}
	b.logf("latency at %d/s for %s", perSecond, d)
	return b.offer(ctx, cmds, perSecond)
}

// queuedRSS queues n commands with no worker running, then starts one and
// reports its peak RSS once it has drained them.
func (b *bench) queuedRSS(ctx context.Context, n int) (int64, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return 0, err
	}
	b.logf("queueing %d commands", n)
	for lo := 0; lo < n; lo += 100000 {
		for _, c := range generateRange(lo, min(lo+100000, n)) {
			if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
				return 0, err
			}
		}
		<-b.js.PublishAsyncComplete()
	}
	stop, _, err := b.worker(dbURL, "")
	if err != nil {
		return 0, err
	}
	err = b.waitEvents(ctx, n, time.Hour)
	rss, _ := stop()
	return rss, err
}
