package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"simworker/internal/devstack"
)

// natsConfig is a configuration holding only the NATS connection.
type natsConfig struct{ NATS NATS }

func loadNATS(t *testing.T, environ map[string]string) (*natsConfig, error) {
	t.Helper()
	var cfg natsConfig
	_, err := bind("prog nats", "prog nats: testing.", &cfg).load(nil, environ, io.Discard)
	return &cfg, err
}

func TestInboxPrefixValidated(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"_INBOX_worker", "_INBOX.worker", "a.b-c.d_e", "_INBOX"} {
		t.Run("accepted "+p, func(t *testing.T) {
			cfg, err := loadNATS(t, map[string]string{"NATS_URL": "nats://h:4222", "NATS_INBOX_PREFIX": p})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NATS.InboxPrefix != p {
				t.Fatalf("InboxPrefix = %q, want %q", cfg.NATS.InboxPrefix, p)
			}
		})
	}
	t.Run("unset is nats.go's default", func(t *testing.T) {
		cfg, err := loadNATS(t, map[string]string{"NATS_URL": "nats://h:4222"})
		if err != nil || cfg.NATS.InboxPrefix != "" {
			t.Fatalf("InboxPrefix = %q, err = %v", cfg.NATS.InboxPrefix, err)
		}
	})
	for _, p := range []string{"_INBOX.>", "_INBOX.*", "_INBOX_*", "_INBOX.", ".INBOX", "a..b", "_INBOX worker", "_INBOX\tw", "_INBOX\x00"} {
		t.Run("refused "+p, func(t *testing.T) {
			_, err := loadNATS(t, map[string]string{"NATS_URL": "nats://h:4222", "NATS_INBOX_PREFIX": p})
			if err == nil || !strings.HasPrefix(err.Error(), "NATS_INBOX_PREFIX (-nats-inbox-prefix): ") {
				t.Fatalf("err = %v, want a problem of NATS_INBOX_PREFIX", err)
			}
		})
	}
}

func TestConnectUsesInboxPrefix(t *testing.T) {
	t.Parallel()
	srv, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	// A JetStream request's reply subject, as a third party on the API
	// subject sees it (the server answers the request as well).
	replyOf := func(t *testing.T, nc *nats.Conn) string {
		t.Helper()
		spy, err := nats.Connect(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer spy.Close()
		sub, err := spy.SubscribeSync("$JS.API.INFO")
		if err != nil {
			t.Fatal(err)
		}
		if err := spy.Flush(); err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err != nil {
			t.Fatalf("account info: %v", err)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("the request was not seen: %v", err)
		}
		return m.Reply
	}

	for _, tc := range []struct{ name, prefix, want string }{
		{"the prefix set", "_INBOX_test", "_INBOX_test."},
		{"no prefix is _INBOX", "", "_INBOX."},
	} {
		// One at a time: the spy on $JS.API.INFO would see the other's request.
		t.Run(tc.name, func(t *testing.T) {
			nc, err := NATS{URL: srv.URL, InboxPrefix: tc.prefix}.Connect("cli-test", zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			for what, subject := range map[string]string{"NewInbox": nc.NewInbox(), "NewRespInbox": nc.NewRespInbox(), "a JetStream request's reply": replyOf(t, nc)} {
				if !strings.HasPrefix(subject, tc.want) {
					t.Errorf("%s is %q, want it under %s", what, subject, tc.want)
				}
			}
		})
	}
}

func TestBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Bytes{"0": 0, "1048576": 1 << 20, "1GiB": 1 << 30, "512 MiB": 512 << 20, "2KB": 2000, "3TB": 3e12, "10B": 10} {
		var b Bytes
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("%q: got %d %v, want %d", in, b, err, want)
		}
		text, _ := b.MarshalText()
		var back Bytes
		if err := back.UnmarshalText(text); err != nil || back != want {
			t.Errorf("%q: %s does not read back: %d %v", in, text, back, err)
		}
	}
	for _, bad := range []string{"", "-1", "1.5GB", "GiB", "1PB", "9999999999TiB"} {
		var b Bytes
		if err := b.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q was taken as %d", bad, b)
		}
	}
}

// TestConsoleLogger: simworker dev's lines are for reading, not JSON;
// everywhere else they are JSON.
func TestConsoleLogger(t *testing.T) {
	t.Parallel()
	var console, jsonOut bytes.Buffer
	c, err := ConsoleLogger("info", &console)
	if err != nil {
		t.Fatal(err)
	}
	c.Info("worker started", zap.Int("batch_size", 500))
	line := console.String()
	if strings.HasPrefix(line, "{") || !strings.Contains(line, "INFO  worker started") || !strings.Contains(line, `{"batch_size": 500}`) {
		t.Fatalf("console line: %q", line)
	}
	out := &lockedBuffer{b: &jsonOut}
	j, _ := Logger("info", out)
	j.Info("worker started")
	if got := out.String(); got != "" {
		t.Fatalf("an info line written at once (%q): info lines are buffered", got)
	}
	j.Warn("careful")
	if got := out.String(); !strings.HasPrefix(got, `{"level":"info"`) || !strings.Contains(got, `"msg":"careful"`) {
		t.Fatalf("after a warning, JSON lines: %q, want the buffered info line, then the warning", got)
	}
	j.Info("later")
	if err := j.Sync(); err != nil || !strings.Contains(out.String(), `"msg":"later"`) {
		t.Fatalf("Sync did not write the buffered line: %v %q", err, out.String())
	}
}

// lockedBuffer is a buffer the logger's flushing goroutine may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTracingFollowsOTELVariables: no OTEL_* variable, no exporter (spans
// are not recorded); OTEL_EXPORTER_OTLP_ENDPOINT set, spans go there over
// OTLP/HTTP, with OTEL_SERVICE_NAME; OTEL_TRACES_EXPORTER=none wins.
func TestTracingFollowsOTELVariables(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	stop, on, err := Tracing(context.Background(), "simworker-test")
	if err != nil || on {
		t.Fatalf("without OTEL_* variables: on %v, %v", on, err)
	}
	stop()

	var got atomic.Int64
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			b, _ := io.ReadAll(r.Body)
			body.Store(b)
			got.Add(1)
		}
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "worker-under-test")
	stop, on, err = Tracing(context.Background(), "simworker-test")
	if err != nil || !on {
		t.Fatalf("with OTEL_EXPORTER_OTLP_ENDPOINT: on %v, %v", on, err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "a span")
	span.End()
	stop() // flushes
	otel.SetTracerProvider(noop.NewTracerProvider())
	if got.Load() == 0 {
		t.Fatal("no spans reached the OTLP endpoint")
	}
	if b, _ := body.Load().([]byte); !bytes.Contains(b, []byte("worker-under-test")) || !bytes.Contains(b, []byte("a span")) {
		t.Fatalf("the export lacks the service name or the span: %q", b)
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if _, on, _ := Tracing(context.Background(), "simworker-test"); on {
		t.Fatal("OTEL_TRACES_EXPORTER=none exported anyway")
	}
}
