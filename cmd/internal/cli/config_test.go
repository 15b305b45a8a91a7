package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type testInner struct {
	Size  int           `env:"T_SIZE" envDefault:"5" flag:"size" help:"a size"`
	Every time.Duration `env:"T_EVERY" envDefault:"30s" flag:"every" help:"a period"`
}

func (in *testInner) Validate(c *Check) {
	c.Range(&in.Size, 1, 10)
	c.NotNegative(&in.Every)
}

type testConfig struct {
	URL    string `env:"T_URL,required,notEmpty" flag:"url" secret:"url" help:"a URL"`
	Token  string `env:"T_TOKEN" flag:"token" secret:"true" help:"a token"`
	Name   string `env:"T_NAME" envDefault:"anon" flag:"name" help:"a name"`
	Inner  testInner
	Wait   bool   `flag:"wait" help:"wait"`
	Limit  uint64 `flag:"limit" help:"a limit"`
	Choice string `flag:"choice" help:"a or b"`
}

func (c *testConfig) Validate(check *Check) {
	if c.Choice != "" {
		check.OneOf(&c.Choice, "a", "b")
	}
}

func load(t *testing.T, environ map[string]string, args ...string) (*testConfig, []string, error) {
	t.Helper()
	var cfg testConfig
	rest, err := bind("prog test", "prog test: testing.", &cfg).load(args, environ, io.Discard)
	return &cfg, rest, err
}

func TestFlagWinsOverEnvironmentWinsOverDefault(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		cfg, _, err := load(t, map[string]string{"T_URL": "x://h"})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Name != "anon" || cfg.Inner.Size != 5 || cfg.Inner.Every != 30*time.Second || cfg.Wait || cfg.Limit != 0 {
			t.Fatalf("defaults: %+v", cfg)
		}
	})
	t.Run("environment over defaults", func(t *testing.T) {
		cfg, _, err := load(t, map[string]string{"T_URL": "x://h", "T_NAME": "env", "T_SIZE": "7", "T_EVERY": "1m"})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Name != "env" || cfg.Inner.Size != 7 || cfg.Inner.Every != time.Minute {
			t.Fatalf("from the environment: %+v", cfg)
		}
	})
	t.Run("an empty variable is unset", func(t *testing.T) {
		cfg, _, err := load(t, map[string]string{"T_URL": "x://h", "T_NAME": "", "T_SIZE": ""})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Name != "anon" || cfg.Inner.Size != 5 {
			t.Fatalf("empty variables: %+v", cfg)
		}
	})
	t.Run("flags over environment", func(t *testing.T) {
		cfg, rest, err := load(t, map[string]string{"T_URL": "x://h", "T_NAME": "env", "T_SIZE": "7"},
			"-name", "flag", "--size=9", "-url", "y://h", "-wait", "--limit", "12", "FILE")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Name != "flag" || cfg.Inner.Size != 9 || cfg.URL != "y://h" || !cfg.Wait || cfg.Limit != 12 || cfg.Inner.Every != 30*time.Second {
			t.Fatalf("from flags: %+v", cfg)
		}
		if len(rest) != 1 || rest[0] != "FILE" {
			t.Fatalf("rest = %q", rest)
		}
	})
}

func TestProblemsNameTheVariableAndFlag(t *testing.T) {
	t.Parallel()
	t.Run("missing required", func(t *testing.T) {
		_, _, err := load(t, map[string]string{"T_URL": ""})
		if err == nil || !strings.Contains(err.Error(), "missing required setting: T_URL (-url)") {
			t.Fatalf("err = %v", err)
		}
		_, _, err = load(t, map[string]string{"T_URL": "x://h"}, "-url", "")
		if err == nil || !strings.Contains(err.Error(), "T_URL (-url)") {
			t.Fatalf("an empty flag over a variable: err = %v", err)
		}
	})
	t.Run("all together", func(t *testing.T) {
		_, _, err := load(t, map[string]string{"T_SIZE": "lots", "T_EVERY": "soon"}, "-choice", "c")
		if err == nil {
			t.Fatal("accepted")
		}
		want := strings.Join([]string{
			"missing required setting: T_URL (-url); set the environment variable or the flag (see --help)",
			`T_SIZE (-size): "lots" is not a whole number`,
			`T_EVERY (-every): "soon" is not a duration (e.g. 30s, 2m)`,
			`-choice: "c" is not one of a, b`,
		}, "\n")
		if err.Error() != want {
			t.Fatalf("err =\n%s\nwant\n%s", err, want)
		}
	})
	t.Run("out of range", func(t *testing.T) {
		_, _, err := load(t, map[string]string{"T_URL": "x://h", "T_SIZE": "11"}, "-every", "-1s")
		want := "T_SIZE (-size): 11 is not from 1 to 10\nT_EVERY (-every): -1s is negative"
		if err == nil || err.Error() != want {
			t.Fatalf("err =\n%v\nwant\n%s", err, want)
		}
	})
	t.Run("a bad flag", func(t *testing.T) {
		var help bytes.Buffer
		var cfg testConfig
		_, err := bind("prog test", "prog test: testing.", &cfg).load([]string{"-limit", "x"}, nil, &help)
		var fe *FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "-limit") || !strings.Contains(err.Error(), "prog test --help") || help.Len() != 0 {
			t.Fatalf("err = %v; output: %s", err, help.String())
		}
	})
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	var cfg testConfig
	_, err := bind("prog test", "prog test: testing.", &cfg).load([]string{"--help"}, nil, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, line := range []string{
		"prog test: testing.\n",
		"\n  -url, T_URL  (required)\n      a URL\n",
		"\n  -token, T_TOKEN  (default none)\n      a token\n",
		"\n  -size, T_SIZE  (default 5)\n      a size\n",
		"\n  -every, T_EVERY  (default 30s)\n      a period\n",
		"\n  -wait  (no environment variable; default false)\n      wait\n",
		"\n  -limit  (no environment variable; default 0)\n      a limit\n",
		"\n  -choice  (no environment variable; default none)\n      a or b\n",
	} {
		if !strings.Contains(help.String(), line) {
			t.Errorf("help lacks %q:\n%s", line, help.String())
		}
	}
}

func TestSecretsMasked(t *testing.T) {
	t.Parallel()
	cfg, _, err := load(t, map[string]string{"T_URL": "x://me:pw-s3cret@h:1/db?a=1", "T_TOKEN": "tok-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range Fields(cfg) {
		got[f.Key] = f.String
	}
	want := map[string]string{"T_URL": "x://me:***@h:1/db?a=1", "T_TOKEN": "***", "T_NAME": "anon", "T_SIZE": "5",
		"T_EVERY": "30s", "-wait": "false", "-limit": "0", "-choice": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields: %v", got)
	}
	// A secret that fails to parse is not echoed either.
	var sc struct {
		Port secretPort `env:"T_PORT" flag:"port" secret:"true" help:"a secret port"`
	}
	_, err = bind("prog test", "", &sc).load(nil, map[string]string{"T_PORT": "s3cret"}, io.Discard)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), `T_PORT (-port): "***"`) {
		t.Fatalf("err = %v", err)
	}
}

type secretPort int

func (p *secretPort) UnmarshalText(b []byte) error { return errors.New("is not a port") }

func TestMask(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ kind, in, want string }{
		{"", "plain", "plain"},
		{"true", "tok", "***"},
		{"true", "", ""},
		{"url", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"url", "nats://u:p@a:1,nats://b:2,tls://tok@c:3", "nats://u:***@a:1,nats://b:2,tls://***@c:3"},
		{"url", "postgres://pg:s3cret@db:5432/app?sslmode=verify-full&password=s3cret", "postgres://pg:***@db:5432/app?sslmode=verify-full&password=***"},
		{"url", "postgres://db/app?sslpassword=s3cret&application_name=x", "postgres://db/app?sslpassword=***&application_name=x"},
		{"url", "host=db user=pg password=s3cret dbname=app", "host=db user=pg password=*** dbname=app"},
		{"url", "host=db password='s3 cret' dbname=app", "host=db password=*** dbname=app"},
		{"url", "u:s3cret@host:4222", "***@host:4222"},
		{"url", "postgres://u:%zz@host/db", "***@host/db"},
		{"url", "postgres://host/db?%zz&password=s3cret", "postgres://host/db?%zz&password=***"},
		{"url", "nats://ho st:1?token=s3cret", "nats://ho st:1?***"},
	} {
		if got := mask(tt.kind, tt.in); got != tt.want {
			t.Errorf("mask(%q, %q) = %q, want %q", tt.kind, tt.in, got, tt.want)
		}
	}
}

func TestMalformedConfigurationsPanic(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]any{
		"no help": &struct {
			A int `env:"A" flag:"a"`
		}{},
		"no flag": &struct {
			A int `env:"A" help:"a"`
		}{},
		"no tags": &struct{ A int }{},
		"flag-only default": &struct {
			A int `flag:"a" envDefault:"1" help:"a"`
		}{},
		"ambiguous name": &struct {
			X struct {
				N int `env:"N1" flag:"n1" help:"n"`
			}
			Y struct {
				N int `env:"N2" flag:"n2" help:"n"`
			}
		}{},
		"not a struct value": 1,
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			bind("prog test", "", cfg)
		})
	}
}
