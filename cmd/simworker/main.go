// Command simworker is the SIM-provisioning worker: `simworker run` consumes
// Create-SIM commands from JetStream; `simworker api` serves the "Create a
// SIM" call over HTTP on top of them; `simworker dev` runs everything in one
// process for a first try; `simworker migrate` applies the migrations and
// exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"simworker/cmd/internal/cli"
)

const usage = `simworker: turns Create-SIM commands from NATS JetStream into sim.created / sim.rejected events.

Usage:
  simworker run      consume commands (needs NATS_URL and DATABASE_URL)
  simworker api      the HTTP API: POST /v1/sims and friends (needs NATS_URL and DATABASE_URL)
  simworker dev      all-in-one: in-process NATS with JetStream, a private PostgreSQL, demo data, the worker
  simworker migrate  apply the database migrations and exit (needs DATABASE_URL)
  simworker probe    exit 0 when a worker's /readyz (or /healthz) answers 200: a health check for
                     images without a shell

Run 'simworker COMMAND --help' for the settings of a command.
`

// defaultGCPercent is the garbage collector's target when GOGC is not set.
// The worker's live heap is small (tens of MB) and it allocates per command,
// so at Go's default of 100 the collector ran so often that it took about a
// sixth of the worker's CPU; at 300 (measured with make bench) it costs
// about 15% less CPU per command for about 20 MB more resident memory.
// GOGC and GOMEMLIMIT in the environment still rule.
const defaultGCPercent = 300

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	// A broken pipe on standard output or error (`make run | tee log` and
	// Ctrl-C, which ends tee first) would kill the process by SIGPIPE before
	// it stops the worker and PostgreSQL; ignored, the writes fail instead
	// and the stop goes on.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	var fe *cli.FlagError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &fe):
		fmt.Fprintln(os.Stderr, "simworker:", err)
		os.Exit(2)
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "simworker: %s\n\n%s", ue, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "simworker:", err)
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// commands are simworker's commands, each with its configuration.
func commands() []cli.Command {
	return []cli.Command{
		cli.NewCommand("simworker run", "simworker run: consume Create-SIM commands from JetStream and publish their outcomes.", runCmd),
		cli.NewCommand("simworker api", "simworker api: the \"Create a SIM\" call over HTTP: authenticates API tokens, publishes commands, answers with their outcomes.", apiCmd),
		cli.NewCommand("simworker dev", "simworker dev: in-process NATS with JetStream, a private PostgreSQL, demo data and the worker, in one process.", devCmd),
		cli.NewCommand("simworker migrate", "simworker migrate: apply the database migrations and exit.", migrateCmd),
		cli.NewCommand("simworker probe", "simworker probe: exit 0 when the URL answers 200 within 3 s (a container health check).", probeCmd),
	}
}

// dispatch runs the command args names, writing to stdout and stderr.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	c, rest, ok := cli.Find(commands(), args)
	if !ok {
		if near := cli.Nearest(commands(), args); near != "" {
			return usageError(fmt.Sprintf("unknown command %q: did you mean %q?", strings.Join(args[:len(strings.Fields(near))], " "), near))
		}
		return usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	return c.Run(ctx, rest, stdout, stderr)
}
