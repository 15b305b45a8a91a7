// Package clitest checks that a program's --help lists every flag of each
// command and that the documentation names every setting.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"simworker/cmd/internal/cli"
)

// Run is a program's dispatch: the command named by args' first words.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Help is the output of the command c with --help, run through run.
func Help(t *testing.T, run Run, c cli.Command) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append(c.Words(), "--help"), &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("%s --help: %v", c.Name, err)
	}
	return out.String() + errOut.String()
}

// EveryFlagListed fails the test for every flag of each command's flag set
// that the command's --help does not list, with its environment variable
// (or "no environment variable"), its default (or "required") and its help.
func EveryFlagListed(t *testing.T, run Run, commands []cli.Command) {
	t.Helper()
	for _, c := range commands {
		help := Help(t, run, c)
		n := 0
		c.FlagSet().VisitAll(func(f *flag.Flag) {
			n++
			line := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f.Name) +
				`(, [A-Z][A-Z0-9_]*  \((required|default .+)\)|  \(no environment variable; default .+\))\n      ` +
				regexp.QuoteMeta(f.Usage) + `$`)
			if !line.MatchString(help) {
				t.Errorf("%s --help does not list -%s with its environment variable, default and help:\n%s", c.Name, f.Name, help)
			}
		})
		if n == 0 {
			t.Errorf("%s has no flags", c.Name)
		}
	}
}

var settingLine = regexp.MustCompile(`(?m)^  -[a-z-]+, ([A-Z][A-Z0-9_]*)  \((required|default .*)\)$`)

// Documented runs each command with --help and fails the test for every
// setting (environment variable) its help lists that the document at path does not
// name in backquotes, or when a help lists none.
func Documented(t *testing.T, readmePath string, run Run, commands []cli.Command) {
	t.Helper()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		help := Help(t, run, c)
		envs := settingLine.FindAllStringSubmatch(help, -1)
		if len(envs) == 0 {
			t.Fatalf("%s --help lists no settings:\n%s", c.Name, help)
		}
		for _, m := range envs {
			if !strings.Contains(string(readme), "`"+m[1]+"`") {
				t.Errorf("%s: setting %s is not in %s", c.Name, m[1], readmePath)
			}
		}
	}
}

// GeneratedSection fails the test unless the file at path holds, between
// the lines "<!-- BEGIN name -->" and "<!-- END name -->", exactly want; run
// with UPDATE_DOCS=1 it writes want there instead.
func GeneratedSection(t *testing.T, path, name, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- BEGIN "+name+" -->\n", "<!-- END "+name+" -->"
	i, j := strings.Index(string(data), begin), strings.Index(string(data), end)
	if i < 0 || j < i {
		t.Fatalf("%s has no section %s (%q ... %q)", path, name, begin, end)
	}
	got := string(data[i+len(begin) : j])
	if got == want {
		return
	}
	if os.Getenv("UPDATE_DOCS") != "" {
		out := string(data[:i+len(begin)]) + want + string(data[j:])
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s, section %s, is not what the commands' --help says: run `make docs` (UPDATE_DOCS=1 go test ./cmd/...)", path, name)
}
