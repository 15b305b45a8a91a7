package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"simworker/cmd/internal/cli"
	"simworker/cmd/internal/cli/clitest"
	"simworker/repo/repotest"
)

func TestRunRefusesWithoutRequiredSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
		not  []string
	}{
		{"both missing", map[string]string{"NATS_URL": "", "DATABASE_URL": ""}, []string{"NATS_URL", "DATABASE_URL"}, nil},
		{"database missing", map[string]string{"NATS_URL": "nats://127.0.0.1:1", "DATABASE_URL": ""}, []string{"DATABASE_URL"}, []string{"NATS_URL"}},
		{"nats missing", map[string]string{"NATS_URL": "", "DATABASE_URL": "postgres://x@127.0.0.1:1/db"}, []string{"NATS_URL"}, []string{"DATABASE_URL,"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := dispatch(context.Background(), []string{"run"}, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("started without its settings")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q names %s, which is set", err, n)
				}
			}
		})
	}
}

func TestRunRejectsBadSettings(t *testing.T) {
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("DATABASE_URL", "postgres://x@127.0.0.1:1/db")
	t.Setenv("SIM_BATCH_SIZE", "lots")
	t.Setenv("SIM_ACK_WAIT", "soon")
	t.Setenv("SIM_EVENTS_MAX_BYTES", "lots")
	t.Setenv("SIM_COMMANDS_DISCARD", "sometimes")
	err := dispatch(context.Background(), []string{"run", "-max-backoff", "-1s", "-deadletter-max-age", "-1h"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("accepted bad settings")
	}
	for _, w := range []string{"SIM_BATCH_SIZE", "SIM_ACK_WAIT", "SIM_MAX_BACKOFF", "SIM_EVENTS_MAX_BYTES", "SIM_COMMANDS_DISCARD", "SIM_DEADLETTER_MAX_AGE"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

// TestStreamLimitSettings: 0 is no limit, in the consumer's terms.
func TestStreamLimitSettings(t *testing.T) {
	if l := limits(0, 0, "new"); l.MaxAge >= 0 || l.MaxBytes >= 0 || l.Discard != jetstream.DiscardNew {
		t.Errorf("0, 0, new: %+v", l)
	}
	if l := limits(time.Hour, 1<<20, "old"); l.MaxAge != time.Hour || l.MaxBytes != 1<<20 || l.Discard != jetstream.DiscardOld {
		t.Errorf("1h, 1MiB, old: %+v", l)
	}
}

func TestDatabaseURLNeverEchoed(t *testing.T) {
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("DATABASE_URL", "postgres://user:s3cr3t@127.0.0.1:1/db?sslmode=bogus")
	var stderr syncBuffer
	err := dispatch(context.Background(), []string{"run"}, io.Discard, &stderr)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(stderr.String(), "s3cr3t") {
		t.Fatalf("err = %v", err)
	}
}

// TestNoSecretInLogs: with both dependencies unreachable the worker logs
// its settings and then while it waits for them, and never prints a
// password or token: the settings show them masked.
func TestNoSecretInLogs(t *testing.T) {
	var buf syncBuffer
	t.Setenv("NATS_URL", "nats://natsuser:nats-s3cret@127.0.0.1:1")
	t.Setenv("NATS_TOKEN", "tok-s3cret")
	t.Setenv("SIM_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("DATABASE_URL", "postgres://pguser:pg-s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = dispatch(ctx, []string{"run"}, io.Discard, &buf)
	out := buf.String()
	if !strings.Contains(out, "waiting for dependencies") {
		t.Fatalf("expected start-up warnings, got: %s", out)
	}
	var settings map[string]any
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"msg":"settings"`) {
			if err := json.Unmarshal([]byte(line), &settings); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, want := range map[string]string{
		"NATS_URL":       "nats://natsuser:***@127.0.0.1:1",
		"NATS_TOKEN":     "***",
		"NATS_PASSWORD":  "",
		"DATABASE_URL":   "postgres://pguser:***@127.0.0.1:1/db?sslmode=disable&connect_timeout=1",
		"SIM_BATCH_SIZE": "500",
		"SIM_HTTP_ADDR":  "127.0.0.1:0",
	} {
		if settings[k] != want {
			t.Errorf("settings line: %s = %v, want %q (line: %v)", k, settings[k], want, settings)
		}
	}
	for _, secret := range []string{"nats-s3cret", "tok-s3cret", "pg-s3cret"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log shows %s:\n%s", secret, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEverySettingIsDocumented: --help lists every setting with its
// environment variable, and docs/configuration.md has each one.
func TestEverySettingIsDocumented(t *testing.T) {
	clitest.Documented(t, "../../docs/configuration.md", dispatch, commands())
}

// TestHelpListsEveryFlag: each command's --help lists every flag its flag
// set has.
func TestHelpListsEveryFlag(t *testing.T) {
	clitest.EveryFlagListed(t, dispatch, commands())
}

// TestStartupNamesTheNATSItCannotReach: with PostgreSQL up and NATS_URL
// stale, the start-up warnings say which NATS cannot be reached (without
// its password), not only that a stream look-up timed out.
func TestStartupNamesTheNATSItCannotReach(t *testing.T) {
	var buf syncBuffer
	t.Setenv("NATS_URL", "nats://natsuser:nats-s3cret@127.0.0.1:1")
	t.Setenv("SIM_HTTP_ADDR", "off")
	t.Setenv("DATABASE_URL", repotest.NewDatabase(t))
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil && !strings.Contains(buf.String(), "cannot connect to NATS") {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	_ = dispatch(ctx, []string{"run"}, io.Discard, &buf)
	out := buf.String()
	if !regexp.MustCompile(`cannot connect to NATS at nats://[^ ]*127\.0\.0\.1:1 \(`).MatchString(out) || strings.Contains(out, "nats-s3cret") {
		t.Fatalf("start-up warnings do not name the NATS server:\n%s", out)
	}
}

// TestFirstRunHints: a mistyped command names the nearest one; a missing
// NATS_URL or DATABASE_URL points at the env file simworker dev wrote, when
// there is one.
func TestFirstRunHints(t *testing.T) {
	err := dispatch(context.Background(), []string{"rnu"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `did you mean "run"?`) {
		t.Fatalf("rnu: %v", err)
	}
	if err := dispatch(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("frobnicate: %v", err)
	}
	t.Chdir(t.TempDir())
	t.Setenv("NATS_URL", "")
	t.Setenv("DATABASE_URL", "")
	t.Setenv("SIM_DEV_DATA_DIR", "")
	if err := dispatch(context.Background(), []string{"run"}, io.Discard, io.Discard); err == nil || strings.Contains(err.Error(), "source") {
		t.Fatalf("without an env file: %v", err)
	}
	if err := os.MkdirAll(".simworker-dev", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(".simworker-dev/env", []byte("export NATS_URL=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = dispatch(context.Background(), []string{"run"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "source .simworker-dev/env") {
		t.Fatalf("with the env file: %v", err)
	}
}

// TestConfigurationDoc: docs/configuration.md's tables of simworker are what
// --help says.
func TestConfigurationDoc(t *testing.T) {
	clitest.GeneratedSection(t, "../../docs/configuration.md", "simworker", cli.Markdown(commands()))
}
