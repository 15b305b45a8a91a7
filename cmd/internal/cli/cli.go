// Package cli holds what the simworker and simctl programs share: typed
// configurations whose settings are each a flag and an environment variable
// (config.go), the logger, and the connections.
package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger builds the JSON production logger at level ("debug", "info",
// "warn", "error") writing to w.
func Logger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %q is not one of debug, info, warn, error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	// Written through a buffer: one write(2) per line cost the worker a
	// tenth of its CPU at info level (a line per outcome). Info lines reach
	// the output within a second (and at a clean stop, which syncs the
	// logger); a warning or an error goes out at once, with what was
	// buffered before it.
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(w), Size: 256 << 10, FlushInterval: time.Second}
	return zap.New(promptCore{zapcore.NewCore(zapcore.NewJSONEncoder(enc), ws, lvl), ws}), nil
}

// promptCore writes entries of warn level and above through at once.
type promptCore struct {
	zapcore.Core
	ws zapcore.WriteSyncer
}

func (c promptCore) With(fields []zapcore.Field) zapcore.Core {
	return promptCore{c.Core.With(fields), c.ws}
}

func (c promptCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c promptCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	err := c.Core.Write(ent, fields)
	if ent.Level >= zapcore.WarnLevel {
		if serr := c.ws.Sync(); err == nil {
			err = serr
		}
	}
	return err
}

// ConsoleLogger is Logger for a person at a terminal (simworker dev): one
// readable line per entry, "15:04:05.000  INFO  worker started  {...}",
// the fields as JSON at the end.
func ConsoleLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %q is not one of debug, info, warn, error", level)
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	enc.ConsoleSeparator = "  "
	enc.CallerKey = zapcore.OmitKey
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// NATS is the connection of a command that talks to NATS.
type NATS struct {
	URL      string `env:"NATS_URL,required,notEmpty" flag:"nats-url" secret:"url" help:"NATS server URL(s), comma-separated (nats://host:4222, tls://host:4222)"`
	Creds    string `env:"NATS_CREDS" flag:"nats-creds" help:"path of a NATS credentials file (JWT + NKey seed)"`
	NKey     string `env:"NATS_NKEY" flag:"nats-nkey" help:"path of an NKey seed file"`
	User     string `env:"NATS_USER" flag:"nats-user" help:"NATS user name"`
	Password string `env:"NATS_PASSWORD" flag:"nats-password" secret:"true" help:"NATS password (prefer the environment variable: flags show in ps)"`
	Token    string `env:"NATS_TOKEN" flag:"nats-token" secret:"true" help:"NATS authentication token"`
	CA       string `env:"NATS_CA" flag:"nats-ca" help:"path of a PEM CA bundle to verify the NATS server's TLS certificate"`
	Cert     string `env:"NATS_CERT" flag:"nats-cert" help:"path of a PEM client certificate for TLS client authentication (with -nats-key)"`
	Key      string `env:"NATS_KEY" flag:"nats-key" help:"path of the PEM private key of -nats-cert"`
	// InboxPrefix replaces nats.go's _INBOX in every reply subject of the
	// connection: request replies, PubAcks, and the messages of pull and
	// ordered consumers. A NATS user that may subscribe only to its own
	// prefix (deploy/nats/accounts.conf) keeps them from other users.
	InboxPrefix string `env:"NATS_INBOX_PREFIX" flag:"nats-inbox-prefix" help:"prefix of this client's reply subjects instead of _INBOX (e.g. _INBOX_worker): the one its NATS user may subscribe to"`
	// A link to NATS that stays open but carries nothing is noticed when
	// MaxPingsOut pings in a row go unanswered: within about
	// PingInterval x (MaxPingsOut+1), instead of nats.go's default 2 minutes
	// x 2; the client then reconnects.
	PingInterval time.Duration `env:"NATS_PING_INTERVAL" envDefault:"2s" flag:"nats-ping-interval" help:"how often the client pings the NATS server"`
	MaxPingsOut  int           `env:"NATS_MAX_PINGS_OUT" envDefault:"2" flag:"nats-max-pings-out" help:"unanswered pings after which the connection is taken as dead and re-made"`
}

// Validate: a client certificate comes with its key; an inbox prefix is
// a subject without wildcards.
func (n *NATS) Validate(c *Check) {
	if (n.Cert == "") != (n.Key == "") {
		c.Fail(&n.Cert, "a client certificate and its key (NATS_KEY, -nats-key) go together")
	}
	if n.PingInterval <= 0 {
		c.Fail(&n.PingInterval, "%s is not a positive duration", n.PingInterval)
	}
	c.Positive(&n.MaxPingsOut)
	if n.InboxPrefix != "" && !literalSubject(n.InboxPrefix) {
		c.Fail(&n.InboxPrefix, "%q is not a subject prefix: tokens separated by single dots, without spaces, * or > (e.g. _INBOX_worker)", n.InboxPrefix)
	}
}

// literalSubject tells whether s is a NATS subject without wildcards:
// non-empty tokens separated by dots, with no white space, '*' or '>'
// (the server splits a protocol line on white space; nats.go refuses
// wildcards in an inbox prefix).
func literalSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsFunc(tok, func(r rune) bool {
			return r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
		}) {
			return false
		}
	}
	return true
}

// Database is the PostgreSQL connection of a command that needs one.
type Database struct {
	URL string `env:"DATABASE_URL,required,notEmpty" flag:"database-url" secret:"url" help:"PostgreSQL URL; TLS through it, e.g. ?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.pem"`
}

// Shown is NATS_URL as it may be printed: without a password or token.
func (n NATS) Shown() string { return mask("url", n.URL) }

// Connect dials NATS with the configured authentication, reconnecting
// forever: a NATS outage is waited out, never fatal, even at start.
func (n NATS) Connect(name string, log *zap.Logger) (*nats.Conn, error) {
	return n.connect(name, log, true)
}

// ConnectNow is Connect for a command run by hand: a server it cannot
// reach at once is an error that names the URL, not a wait.
func (n NATS) ConnectNow(name string, log *zap.Logger) (*nats.Conn, error) {
	return n.connect(name, log, false)
}

func (n NATS) connect(name string, log *zap.Logger, waitAtStart bool) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(waitAtStart),
		nats.PingInterval(n.PingInterval),
		nats.MaxPingsOutstanding(n.MaxPingsOut),
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
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	if n.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(n.NKey)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, o)
	}
	if n.User != "" || n.Password != "" {
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	}
	if n.Token != "" {
		opts = append(opts, nats.Token(n.Token))
	}
	if n.CA != "" {
		opts = append(opts, nats.RootCAs(n.CA))
	}
	if n.Cert != "" || n.Key != "" { // both: see Validate
		opts = append(opts, nats.ClientCert(n.Cert, n.Key))
	}
	if n.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(n.InboxPrefix))
	}
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", n.Shown(), err)
	}
	return nc, nil
}
