package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
	clitest.Documented(t, "../../README.md", dispatch, commands())
}

// TestHelpListsEveryFlag: each command's --help lists every flag its flag
// set has.
func TestHelpListsEveryFlag(t *testing.T) {
	clitest.EveryFlagListed(t, dispatch, commands())
}
