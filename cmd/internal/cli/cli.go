// Package cli holds what the simworker and simctl programs share: settings
// that are both a flag and an environment variable, the logger, and the
// connections.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Settings is a set of options, each a flag and an environment variable; a
// flag given on the command line wins over the environment, which wins over
// the default.
type Settings struct {
	fs    *flag.FlagSet
	order []*setting
	err   error
}

type setting struct {
	flag, env, def, usage string
	required              bool
	secret                bool
	dst                   *string
}

// UsageOutput is where --help goes (tests capture it).
var UsageOutput io.Writer = os.Stderr

// New returns an empty set for the named command.
func New(name, summary string) *Settings {
	s := &Settings{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	s.fs.SetOutput(UsageOutput)
	s.fs.Usage = func() {
		out := s.fs.Output()
		fmt.Fprintf(out, "%s\n\nSettings (flag, environment variable, default):\n", summary)
		for _, st := range s.order {
			def := "default " + st.def
			if st.required {
				def = "required"
			} else if st.def == "" {
				def = "default none"
			}
			fmt.Fprintf(out, "  -%s, %s  (%s)\n      %s\n", st.flag, st.env, def, st.usage)
		}
	}
	return s
}

// String declares a string setting.
func (s *Settings) String(flagName, env, def, usage string) *string {
	st := &setting{flag: flagName, env: env, def: def, usage: usage, dst: new(string)}
	s.order = append(s.order, st)
	s.fs.StringVar(st.dst, flagName, def, usage)
	return st.dst
}

// Required declares a string setting that must be given.
func (s *Settings) Required(flagName, env, usage string) *string {
	p := s.String(flagName, env, "", usage)
	s.order[len(s.order)-1].required = true
	return p
}

// Secret marks the last declared setting as never to be printed.
func (s *Settings) Secret() { s.order[len(s.order)-1].secret = true }

// FlagSet exposes the flags, e.g. for bool flags that have no environment variable.
func (s *Settings) FlagSet() *flag.FlagSet { return s.fs }

// Names lists the settings' environment variables, in declaration order.
func (s *Settings) Names() []string {
	names := make([]string, len(s.order))
	for i, st := range s.order {
		names[i] = st.env
	}
	return names
}

// Parse fills the settings from args and the environment and checks the
// required ones, naming every missing variable.
func (s *Settings) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var missing []string
	for _, st := range s.order {
		if !set[st.flag] {
			if v, ok := os.LookupEnv(st.env); ok && v != "" {
				*st.dst = v
			}
		}
		if st.required && *st.dst == "" {
			missing = append(missing, st.env)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing required setting: %s (set the environment variable or the flag; see --help)",
			strings.Join(missing, ", "))
	}
	return nil
}

// Duration parses a duration setting, naming it in the error.
func Duration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a valid duration (e.g. 30s, 2m)", name, v)
	}
	return d, nil
}

// Int parses a positive integer setting, naming it in the error.
func Int(name, v string) (int, error) {
	var n int
	if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 || fmt.Sprint(n) != strings.TrimSpace(v) {
		return 0, fmt.Errorf("%s: %q is not a positive whole number", name, v)
	}
	return n, nil
}

// Logger builds the JSON production logger at level ("debug", "info",
// "warn", "error") writing to w.
func Logger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %q is not one of debug, info, warn, error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// NATS holds the connection settings of a NATS client.
type NATS struct {
	URL, Creds, NKey, User, Password, Token, CA, Cert, Key *string
}

// DeclareNATS declares the NATS connection settings; the URL is required
// when required is true.
func DeclareNATS(s *Settings, required bool) *NATS {
	n := &NATS{}
	if required {
		n.URL = s.Required("nats-url", "NATS_URL", "NATS server URL(s), comma-separated (nats://host:4222, tls://host:4222)")
	} else {
		n.URL = s.String("nats-url", "NATS_URL", "", "NATS server URL(s), comma-separated")
	}
	n.Creds = s.String("nats-creds", "NATS_CREDS", "", "path of a NATS credentials file (JWT + NKey seed)")
	n.NKey = s.String("nats-nkey", "NATS_NKEY", "", "path of an NKey seed file")
	n.User = s.String("nats-user", "NATS_USER", "", "NATS user name")
	n.Password = s.String("nats-password", "NATS_PASSWORD", "", "NATS password (prefer the environment variable: flags show in ps)")
	s.Secret()
	n.Token = s.String("nats-token", "NATS_TOKEN", "", "NATS authentication token")
	s.Secret()
	n.CA = s.String("nats-ca", "NATS_CA", "", "path of a PEM CA bundle to verify the NATS server's TLS certificate")
	n.Cert = s.String("nats-cert", "NATS_CERT", "", "path of a PEM client certificate for TLS client authentication (with -nats-key)")
	n.Key = s.String("nats-key", "NATS_KEY", "", "path of the PEM private key of -nats-cert")
	return n
}

// PlainNATS is a connection to url without authentication (the in-process
// dev server).
func PlainNATS(url string) *NATS {
	e := func() *string { return new(string) }
	return &NATS{URL: &url, Creds: e(), NKey: e(), User: e(), Password: e(), Token: e(), CA: e(), Cert: e(), Key: e()}
}

// Connect dials NATS with the configured authentication, reconnecting
// forever: a NATS outage is waited out, never fatal.
func (n *NATS) Connect(name string, log *zap.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", zap.String("server", c.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats async error", zap.Error(err))
		}),
	}
	if *n.Creds != "" {
		opts = append(opts, nats.UserCredentials(*n.Creds))
	}
	if *n.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(*n.NKey)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, o)
	}
	if *n.User != "" || *n.Password != "" {
		opts = append(opts, nats.UserInfo(*n.User, *n.Password))
	}
	if *n.Token != "" {
		opts = append(opts, nats.Token(*n.Token))
	}
	if *n.CA != "" {
		opts = append(opts, nats.RootCAs(*n.CA))
	}
	if *n.Cert != "" || *n.Key != "" {
		if *n.Cert == "" || *n.Key == "" {
			return nil, errors.New("NATS_CERT and NATS_KEY go together")
		}
		opts = append(opts, nats.ClientCert(*n.Cert, *n.Key))
	}
	nc, err := nats.Connect(*n.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}
