package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// limits are this machine's raw rates, the yardsticks of the worker's.
type limits struct {
	jsPublish, jsConsume, pgInsert, naive float64
}

func (b *bench) result(name, value, note string) {
	b.rows = append(b.rows, fmt.Sprintf("| %s | %s | %s |", name, value, note))
	b.logf("%s: %s %s", name, value, note)
}

func (b *bench) header(cmds []command) {
	size := 0
	for _, c := range cmds {
		size += len(c.body)
	}
	b.rows = append(b.rows, "| measure | result | notes |", "| --- | --- | --- |")
	b.result("machine", fmt.Sprintf("%d cores", runtime.NumCPU()), fmt.Sprintf("%s/%s, %s; mean command %d bytes", runtime.GOOS, runtime.GOARCH, runtime.Version(), size/len(cmds)))
}

// measureLimits: raw JetStream, raw PostgreSQL and the naive baseline.
func (b *bench) measureLimits(ctx context.Context, cmds []command) (limits, error) {
	var l limits
	var err error
	if l.jsPublish, l.jsConsume, err = b.rawJetStream(ctx, cmds); err != nil {
		return l, err
	}
	b.result("limit: JetStream async publish", rate(l.jsPublish), "same messages, file storage")
	b.result("limit: JetStream pull consume + ack", rate(l.jsConsume), "batches of 500")
	if l.pgInsert, err = b.rawPostgres(ctx, cmds); err != nil {
		return l, err
	}
	b.result("limit: PostgreSQL batched insert", rate(l.pgInsert), "a SIM row + a processed-command row each, 500 per transaction, 4 connections")
	naive := cmds[:min(b.o.naive, len(cmds))]
	if l.naive, err = b.naive(ctx, naive); err != nil {
		return l, err
	}
	b.result("naive baseline", rate(l.naive), fmt.Sprintf("one transaction + one synchronous publish + ack per command, %d commands", len(naive)))
	return l, nil
}

// measureWorker: the worker end to end, its CPU per command and RSS, and
// the ratios to the limits. It returns the end-to-end rate.
func (b *bench) measureWorker(ctx context.Context, cmds []command, l limits) (float64, error) {
	w, rss, cpu, err := b.throughput(ctx, cmds, 0, b.o.cpuProfile)
	if err != nil {
		return 0, err
	}
	b.result("worker end to end", rate(w), fmt.Sprintf("%d commands (90%% valid), first publish to last outcome; batch %d, concurrency %d", len(cmds), b.o.batchSize, b.o.concurrency))
	b.result("CPU per command", cpu.perCommand(len(cmds), b.pgPID != 0, b.ownNATS), "CPU time over the throughput run divided by its commands")
	if b.pgPID != 0 && b.ownNATS {
		// Everything runs on this machine's cores: their CPU time per command
		// bounds the rate, and the worker's share is all this project owns.
		per := func(d time.Duration) float64 { return d.Seconds() / float64(len(cmds)) }
		cores := float64(runtime.NumCPU())
		all := per(cpu.worker) + per(cpu.postgres) + per(cpu.bench)
		b.result("CPU ceiling", fmt.Sprintf("%.0f/s", cores/all),
			fmt.Sprintf("%d cores / CPU per command; %.0f/s if the worker cost nothing (PostgreSQL and JetStream alone)",
				runtime.NumCPU(), cores/(per(cpu.postgres)+per(cpu.bench))))
	}
	b.result("worker peak RSS", fmt.Sprintf("%.0f MB", float64(rss)/1e6), "during the throughput run")
	b.result("worker / JetStream limit", fmt.Sprintf("%.2f", w/min(l.jsPublish, l.jsConsume)), "")
	b.result("worker / PostgreSQL limit", fmt.Sprintf("%.2f", w/l.pgInsert), "")
	b.result("worker / naive", fmt.Sprintf("%.1fx", w/l.naive), "")
	return w, nil
}

// measurePassThrough: the worker beside the pass-through worker (the least
// any correct worker must do, passthrough.go) on the same valid commands,
// alternating, pairs times; then the medians: the rates and their ratio,
// the worker's CPU and allocations per command, and p99 publish to outcome
// at 1,000/s for both, with the targets (0.85 of the pass-through; p99 at
// most 10 ms).
func (b *bench) measurePassThrough(ctx context.Context, pairs int) error {
	n := b.o.commands / 2
	cmds, paced := generateValid(n, "pt", 0), generateValid(max(1000, b.o.paced), "ptpaced", n)
	worker, pass := subject{name: "worker", bin: b.o.workerBin}, subject{name: "passthrough"}
	var wr, pr []runResult
	for p := range pairs {
		for _, s := range []subject{worker, pass} {
			b.logf("pass-through pair %d/%d: %s", p+1, pairs, s.name)
			r, err := b.runSubject(ctx, s, cmds, paced, 1000, "")
			if err != nil {
				return err
			}
			if s.bin == "" {
				pr = append(pr, r)
			} else {
				wr = append(wr, r)
			}
		}
	}
	med := func(rs []runResult, f func(runResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	ratios := make([]float64, pairs)
	for i := range ratios {
		ratios[i] = wr[i].rate / pr[i].rate
	}
	rateOf := func(r runResult) float64 { return r.rate }
	p99 := func(r runResult) float64 { return float64(r.lat.p99.Microseconds()) / 1000 }
	verdict := func(ok bool) string { return map[bool]string{true: "met", false: "not met"}[ok] }
	b.result("pass-through worker", rate(med(pr, rateOf)), fmt.Sprintf("the least any correct worker does: decode, COPY the SIM and outcome rows, publish, ack; %d valid commands, median of %d runs", n, pairs))
	b.result("worker, same commands", rate(med(wr, rateOf)), fmt.Sprintf("median of %d runs, alternating with the pass-through", pairs))
	b.result("worker / pass-through", fmt.Sprintf("%.2f", median(ratios)), fmt.Sprintf("median of the %d paired ratios; target at least 0.85: %s", pairs, verdict(median(ratios) >= 0.85)))
	b.result("worker CPU and allocations per command", fmt.Sprintf("%.1f µs, %.0f allocations (%.0f bytes)",
		med(wr, func(r runResult) float64 { return float64(r.workerCPU().Nanoseconds()) / 1000 }),
		med(wr, func(r runResult) float64 { return r.allocs }), med(wr, func(r runResult) float64 { return r.allocBytes })),
		fmt.Sprintf("medians; the pass-through's CPU: %.1f µs; PostgreSQL's per command: worker %.1f µs, pass-through %.1f µs",
			med(pr, func(r runResult) float64 { return float64(r.workerCPU().Nanoseconds()) / 1000 }),
			med(wr, func(r runResult) float64 { return float64(r.cpu.postgres.Nanoseconds()) / 1000 / float64(r.n) }),
			med(pr, func(r runResult) float64 { return float64(r.cpu.postgres.Nanoseconds()) / 1000 / float64(r.n) })))
	b.result("p99 at 1,000/s, same runs", fmt.Sprintf("worker %.1f ms, pass-through %.1f ms", med(wr, p99), med(pr, p99)),
		fmt.Sprintf("%d commands paced after each throughput run, publish to outcome, medians; target at most 10 ms: %s", len(paced), verdict(med(wr, p99) <= 10)))
	return nil
}

// measureHTTP: the HTTP API in front of the worker, beside the NATS path's
// end-to-end rate w, with the targets.
func (b *bench) measureHTTP(ctx context.Context, w float64) error {
	n := max(1000, b.o.commands/10)
	r, probes, cpu, err := b.httpThroughput(ctx, n)
	if err != nil {
		return err
	}
	b.result(fmt.Sprintf("HTTP API, %d clients", httpClients), rate(r),
		fmt.Sprintf("%d POST /v1/sims answered 201, each client its own token and keys; simworker api + simworker run", n))
	b.result("HTTP CPU per request", cpu, "CPU time over the HTTP throughput run divided by its requests")
	b.result("limit: HTTP round trip", rate(probes), fmt.Sprintf("%d GET /v1/sims/{id} answered 404 after the token check (no PostgreSQL, no NATS), %d clients", n, httpClients))
	verdict := func(ok bool) string { return map[bool]string{true: "met", false: "not met"}[ok] }
	b.result("HTTP / NATS end to end", fmt.Sprintf("%.2f", r/w), "target at least 0.50: "+verdict(r/w >= 0.5))
	lat, err := b.httpLatency(ctx, 500, b.o.latencyFor)
	if err != nil {
		return err
	}
	b.result("HTTP latency at 500/s offered", fmt.Sprintf("p50 %s, p99 %s, max %s", ms(lat.p50), ms(lat.p99), ms(lat.max)),
		fmt.Sprintf("%d requests over %s, request to 201; achieved %.0f/s; target p99 at most 25 ms: %s", lat.n, b.o.latencyFor, lat.achieved, verdict(lat.p99 <= 25*time.Millisecond)))
	return nil
}

// measureLatency: publish to outcome at each fixed offered rate.
func (b *bench) measureLatency(ctx context.Context) error {
	for _, r := range b.o.rates {
		lat, err := b.latency(ctx, r, b.o.latencyFor)
		if err != nil {
			return err
		}
		b.result(fmt.Sprintf("latency at %d/s offered", r), fmt.Sprintf("p50 %s, p99 %s, max %s", ms(lat.p50), ms(lat.p99), ms(lat.max)),
			fmt.Sprintf("%d commands over %s, publish to outcome; achieved %.0f/s", lat.n, b.o.latencyFor, lat.achieved))
	}
	return nil
}

// measureScaling: a large sims table, a deep company tree, a long backlog;
// w is the end-to-end rate they are compared with.
func (b *bench) measureScaling(ctx context.Context, cmds []command, w float64) error {
	if b.o.growth > 0 {
		g, _, _, err := b.throughput(ctx, cmds, b.o.growth, "")
		if err != nil {
			return err
		}
		b.result(fmt.Sprintf("worker with %d SIMs stored", b.o.growth), rate(g), fmt.Sprintf("%.0f%% of the empty-table run", 100*g/w))
	}
	deep, _, _, err := b.throughput(ctx, generate(min(len(cmds), 50000), 8), 0, "")
	if err != nil {
		return err
	}
	b.result("worker, company tree depth 8, grants at the root", rate(deep), fmt.Sprintf("%.0f%% of the 3-level run", 100*deep/w))
	if b.o.queued > 0 {
		rss, err := b.queuedRSS(ctx, b.o.queued)
		if err != nil {
			return err
		}
		b.result(fmt.Sprintf("worker peak RSS, %d commands queued", b.o.queued), fmt.Sprintf("%.0f MB", float64(rss)/1e6), "")
	}
	return nil
}

// print writes the table to standard output and, with -out, to a file.
func (b *bench) print() error {
	table := strings.Join(b.rows, "\n") + "\n"
	fmt.Print(table)
	if b.o.out != "" {
		return os.WriteFile(b.o.out, []byte(table), 0o644)
	}
	return nil
}

func rate(r float64) string { return fmt.Sprintf("%.0f/s", r) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
