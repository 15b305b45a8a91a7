package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"simworker/cmd/internal/cli"
	"simworker/cmd/internal/cli/clitest"
	"simworker/repo/repotest"
)

func TestMain(m *testing.M) { repotest.Main(m) }

func TestFixturesLoad(t *testing.T) {
	t.Setenv("DATABASE_URL", repotest.NewDatabase(t))
	var out bytes.Buffer
	file := "../../deploy/fixtures/demo.json"
	if err := dispatch(context.Background(), []string{"fixtures", "load", file}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "13 rows inserted or changed") {
		t.Fatalf("first load: %s", out.String())
	}
	out.Reset()
	if err := dispatch(context.Background(), []string{"fixtures", "load", file}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0 rows inserted or changed") {
		t.Fatalf("second load: %s", out.String())
	}
}

func TestFixturesLoadErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	if err := dispatch(context.Background(), []string{"fixtures", "load", "x.json"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("without DATABASE_URL: %v", err)
	}
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/x")
	if err := dispatch(context.Background(), []string{"fixtures", "load"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("no file accepted")
	}
	if err := dispatch(context.Background(), []string{"fixtures", "load", "/nonexistent.json"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := dispatch(context.Background(), []string{"bogus"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestEverySettingIsDocumented(t *testing.T) {
	clitest.Documented(t, "../../docs/configuration.md", dispatch, commands())
}

// TestHelpListsEveryFlag: each command's --help lists every flag its flag
// set has.
func TestHelpListsEveryFlag(t *testing.T) {
	clitest.EveryFlagListed(t, dispatch, commands())
}

// TestCommandLineMistakes: a command group without its subcommand names the
// subcommands; a mistyped flag gets its error and a one-line hint, not the
// whole help; --help still prints the help.
func TestCommandLineMistakes(t *testing.T) {
	ctx := context.Background()
	for group, want := range map[string]string{"events": "republish", "tokens": "create, list, revoke", "fixtures": "load"} {
		err := dispatch(ctx, []string{group}, &bytes.Buffer{}, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "needs a subcommand: "+want) {
			t.Errorf("simctl %s: %v, want it to name %s", group, err, want)
		}
	}
	var stderr bytes.Buffer
	err := dispatch(ctx, []string{"tokens", "list", "--bogus"}, &bytes.Buffer{}, &stderr)
	var fe *cli.FlagError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "-bogus") || !strings.Contains(err.Error(), "simctl tokens list --help") {
		t.Errorf("a mistyped flag: %v", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("a mistyped flag printed the help:\n%s", stderr.String())
	}
	stderr.Reset()
	if err := dispatch(ctx, []string{"tokens", "list", "--help"}, &bytes.Buffer{}, &stderr); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(stderr.String(), "DATABASE_URL") {
		t.Errorf("--help: %v\n%s", err, stderr.String())
	}
}

// TestMistypedCommandNamesTheNearest: a typing slip in a command of one or
// two words gets the command meant.
func TestMistypedCommandNamesTheNearest(t *testing.T) {
	for args, want := range map[string]string{"tokens crate": "tokens create", "pubish x": "publish", "statsu": "status"} {
		_, _, err := simctl(t, strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), `did you mean "`+want+`"?`) {
			t.Errorf("%s: %v, want a hint of %q", args, err, want)
		}
	}
}

// TestConfigurationDoc: docs/configuration.md's tables of simctl are what
// --help says.
func TestConfigurationDoc(t *testing.T) {
	clitest.GeneratedSection(t, "../../docs/configuration.md", "simctl", cli.Markdown(commands()))
}
