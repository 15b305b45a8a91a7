// Package clitest checks that a program's settings are documented.
package clitest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"simworker/cmd/internal/cli"
)

var settingLine = regexp.MustCompile(`(?m)^  -[a-z-]+, ([A-Z_]+)  \((required|default .*)\)$`)

// Documented runs each command with --help and fails the test for every
// setting (environment variable) its help lists that the README does not
// name in backquotes, or when a help lists none.
func Documented(t *testing.T, readmePath string, commands map[string]func() error) {
	t.Helper()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	cli.UsageOutput = &help
	defer func() { cli.UsageOutput = os.Stderr }()
	for name, run := range commands {
		help.Reset()
		if err := run(); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s --help: %v", name, err)
		}
		envs := settingLine.FindAllStringSubmatch(help.String(), -1)
		if len(envs) == 0 {
			t.Fatalf("%s --help lists no settings:\n%s", name, help.String())
		}
		for _, m := range envs {
			if !strings.Contains(string(readme), "`"+m[1]+"`") {
				t.Errorf("%s: setting %s is not in the README", name, m[1])
			}
		}
	}
}
