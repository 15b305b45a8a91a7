// Command simbench measures the worker against the limits of the machine, in
// one run, and prints a table: raw JetStream and raw PostgreSQL on the same
// data, a naive one-command-per-transaction baseline, the worker end to end,
// latency at fixed offered rates, peak RSS, and growth with a large table.
//
// It starts its own infrastructure like `simworker dev` (PostgreSQL with its
// defaults: fsync and synchronous_commit on; nats-server with JetStream file
// storage and its default sync interval), and the worker as a real
// `simworker run` process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	commands    int
	naive       int
	rates       []int
	latencyFor  time.Duration
	growth      int
	queued      int
	workerBin   string
	batchSize   int
	concurrency int
	out         string
	cpuProfile  string
	http        bool
	httpOnly    bool
	compare     string
	pairs       int
	cmpCommands int
	paced       int
	ptPairs     int
}

func main() {
	var o options
	var rates string
	flag.IntVar(&o.commands, "commands", 200000, "commands for the end-to-end throughput run")
	flag.IntVar(&o.naive, "naive", 5000, "commands for the naive baseline (one transaction and one synchronous publish each)")
	flag.StringVar(&rates, "rates", "1000,10000", "offered rates (commands/s) for the latency runs")
	flag.DurationVar(&o.latencyFor, "latency-duration", 10*time.Second, "how long each latency run offers its rate")
	flag.IntVar(&o.growth, "growth", 0, "SIMs stored before a second throughput run (e.g. 5000000); 0 skips it")
	flag.IntVar(&o.queued, "queued", 0, "commands queued before the worker starts, for its peak RSS (e.g. 1000000); 0 skips it")
	flag.StringVar(&o.workerBin, "worker", "", "the simworker binary (default: built from ./cmd/simworker)")
	flag.IntVar(&o.batchSize, "batch-size", 500, "the worker's SIM_BATCH_SIZE")
	flag.IntVar(&o.concurrency, "concurrency", 2, "the worker's SIM_CONCURRENCY")
	flag.StringVar(&o.out, "out", "", "also write the table (Markdown) to this file")
	flag.BoolVar(&o.http, "http", true, "also measure the HTTP API (simworker api) in front of the worker")
	flag.BoolVar(&o.httpOnly, "http-only", false, "measure only the worker end to end and the HTTP API beside it (no limits, latency or scaling runs)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the worker during the throughput run here")
	flag.StringVar(&o.compare, "compare", "", "paired runs instead of the table: worker binaries (NAME=PATH or PATH), comma-separated, "+
		"and 'passthrough' for the pass-through worker; each run in turn, -pairs times, on the same workload")
	flag.IntVar(&o.pairs, "pairs", 5, "with -compare: how many times each subject runs")
	flag.IntVar(&o.cmpCommands, "compare-commands", 100000, "with -compare: valid commands published at once in each run")
	flag.IntVar(&o.paced, "paced", 5000, "with -compare: commands then offered at 1,000/s in the same run, for p99")
	flag.IntVar(&o.ptPairs, "passthrough-pairs", 3, "runs of the worker and the pass-through worker, alternating, for their ratio")
	passthroughWorker := flag.Bool("passthrough-worker", false, "run as the pass-through worker (NATS_URL, DATABASE_URL): what `make bench` measures the worker against")
	quick := flag.Bool("quick", false, "a run of under a minute: 20,000 commands, 2 s per rate, 1,000 naive")
	flag.Parse()
	if *passthroughWorker {
		if err := passThrough(); err != nil {
			fmt.Fprintln(os.Stderr, "simbench -passthrough-worker:", err)
			os.Exit(1)
		}
		return
	}
	for _, r := range strings.Split(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "simbench: -rates: %q is not a positive rate\n", r)
			os.Exit(2)
		}
		o.rates = append(o.rates, n)
	}
	if *quick { // only what the command line did not set
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["commands"] {
			o.commands = 20000
		}
		if !set["naive"] {
			o.naive = 1000
		}
		if !set["latency-duration"] {
			o.latencyFor = 2 * time.Second
		}
		if !set["passthrough-pairs"] {
			o.ptPairs = 1
		}
		if !set["paced"] {
			o.paced = 2000
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "simbench:", err)
		os.Exit(1)
	}
}

// run measures everything the options ask for and prints the table.
func run(ctx context.Context, o options) error {
	b, stop, err := start(ctx, o)
	if err != nil {
		return err
	}
	defer stop()
	if o.compare != "" {
		subjects, err := subjectsOf(o.compare)
		if err != nil {
			return err
		}
		return b.compare(ctx, subjects, o.pairs, o.cmpCommands, o.paced)
	}
	b.logf("generating %d commands", o.commands)
	cmds := generate(o.commands, 0)
	b.header(cmds)
	if o.httpOnly {
		w, _, _, err := b.throughput(ctx, cmds, 0, "")
		if err != nil {
			return err
		}
		b.result("worker end to end", rate(w), fmt.Sprintf("%d commands", len(cmds)))
		if err := b.measureHTTP(ctx, w); err != nil {
			return err
		}
		return b.print()
	}
	lim, err := b.measureLimits(ctx, cmds)
	if err != nil {
		return err
	}
	w, err := b.measureWorker(ctx, cmds, lim)
	if err != nil {
		return err
	}
	if err := b.measureLatency(ctx); err != nil {
		return err
	}
	if err := b.measurePassThrough(ctx, b.o.ptPairs); err != nil {
		return err
	}
	if b.o.http {
		if err := b.measureHTTP(ctx, w); err != nil {
			return err
		}
	}
	if err := b.measureScaling(ctx, cmds, w); err != nil {
		return err
	}
	return b.print()
}
