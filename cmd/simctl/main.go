// Command simctl is the operators' tool: `simctl fixtures load FILE` loads
// reference data (companies, users, grants, devices, MNO integrations).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"simworker/cmd/internal/cli"
	"simworker/domain"
	"simworker/repo"
)

const usage = `simctl: operate the SIM worker.

Usage:
  simctl fixtures load FILE.json        load reference data (needs DATABASE_URL); '-' reads standard input
  simctl publish [--wait] FILE.ndjson   publish one command envelope per line ('-' reads standard input)
  simctl replay --from-seq N [--to-seq M] | --since DURATION|TIME [--wait]
                                        re-run a range of SIM_COMMANDS through the worker
  simctl events republish --since DURATION|TIME | --commands FILE
                                        re-emit stored outcomes with their original event ids
  simctl tail [--json] [--type created|rejected] [--command ID] [--since D|TIME | --all] [--count N]
                                        follow the outcome events (new ones, unless --since or --all)
  simctl tokens create --user USER_ID [--name TEXT] [--expires DURATION]
                                        print a new API token for simworker api (needs DATABASE_URL)
  simctl tokens list [--user USER_ID]   the API tokens, without their secret
  simctl tokens revoke TOKEN|ID         revoke an API token
  simctl status                         streams, the consumer, stored outcomes by code

Run 'simctl COMMAND --help' for the settings of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	var fe *cli.FlagError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &fe):
		fmt.Fprintln(os.Stderr, "simctl:", err)
		os.Exit(2)
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "simctl: %s\n\n%s", ue, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "simctl:", err)
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// commands are simctl's commands, each with its configuration.
func commands() []cli.Command {
	return []cli.Command{
		cli.NewCommand("simctl fixtures load", "simctl fixtures load FILE.json: upsert reference data; loading the same file twice changes nothing.", fixturesLoad),
		cli.NewCommand("simctl publish", "simctl publish [--wait] FILE.ndjson|-: publish one command envelope per line, Nats-Msg-Id = command_id.", publishCmd),
		cli.NewCommand("simctl replay", "simctl replay --from-seq N [--to-seq M] | --since DURATION|TIME [--wait]: re-run a range of SIM_COMMANDS through the worker.", replayCmd),
		cli.NewCommand("simctl events republish", "simctl events republish --since DURATION|TIME | --commands FILE: re-emit stored outcomes with their original event ids.", republishCmd),
		cli.NewCommand("simctl tail", "simctl tail [--json] [--type created|rejected] [--command ID] [--since D|TIME | --all] [--count N]: follow sim.created / sim.rejected events (new ones, unless --since or --all reads back first).", tailCmd),
		cli.NewCommand("simctl tokens create", "simctl tokens create --user USER_ID [--name TEXT] [--expires DURATION]: print a new API token (only its hash is stored).", tokensCreate),
		cli.NewCommand("simctl tokens list", "simctl tokens list [--user USER_ID]: the API tokens, without their secret.", tokensList),
		cli.NewCommand("simctl tokens revoke", "simctl tokens revoke TOKEN|ID: revoke an API token; every API process refuses it within 5 s.", tokensRevoke),
		cli.NewCommand("simctl status", "simctl status: streams, the simworker consumer, and (with DATABASE_URL) stored outcomes by code.", statusCmd),
	}
}

// dispatch runs the command args names, writing to out and errOut.
func dispatch(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(out, usage)
		return nil
	}
	c, rest, ok := cli.Find(commands(), args)
	if !ok {
		if near := cli.Nearest(commands(), args); near != "" {
			return usageError(fmt.Sprintf("unknown command %q: did you mean %q?", strings.Join(args[:len(strings.Fields(near))], " "), near))
		}
		if subs := cli.Subcommands(commands(), args[0]); len(subs) > 0 {
			return usageError(fmt.Sprintf("%q needs a subcommand: %s", args[0], strings.Join(subs, ", ")))
		}
		return usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	return c.Run(ctx, rest, out, errOut)
}

// fixturesConfig is the configuration of simctl fixtures load.
type fixturesConfig struct {
	Database cli.Database
}

func fixturesLoad(ctx context.Context, cfg *fixturesConfig, rest []string, out, _ io.Writer) error {
	if len(rest) != 1 {
		return usageError("fixtures load takes exactly one FILE ('-' for standard input)")
	}
	var (
		data []byte
		err  error
	)
	if rest[0] == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(rest[0])
	}
	if err != nil {
		return err
	}
	f, err := domain.ParseFixtures(data)
	if err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
	}
	pool, err := openMigrated(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := repo.New(pool).LoadFixtures(ctx, f)
	if err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
	}
	fmt.Fprintf(out, "loaded %s: %d rows inserted or changed (%s)\n", rest[0], n.Total(), n)
	return nil
}

// openMigrated opens the database and applies the migrations missing.
func openMigrated(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := repo.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := repo.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
